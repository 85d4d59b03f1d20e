//! Keeping the kernels to AVX2 (`SLUICEGATE_LOCAL_KERNEL=avx2`, or `kernels::force_avx2`, what
//! the bench uses to measure a CPU without AVX-512) changes which code runs, not the answer:
//! no weights are repacked for VNNI, no AVX-512 path is listed, and the logits agree with the
//! default kernels'. One test in its own process: the switch is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{load_ours, ours_two_steps};
use sluicegate_local::kernels::{force_avx2, simd_paths};
use sluicegate_local::model::WeightFormat;
use sluicegate_local::testing::compare_logits;
use sluicegate_local::testing::ggufs::{tiny_llama, Mix, TINY};

#[test]
fn kept_to_avx2_the_engine_gives_logits_that_agree() {
    let path = tiny_llama(Mix::Q4KM);
    let prompt: Vec<u32> = (0..16).map(|i| (i * 31 + 7) % TINY.vocab as u32).collect();
    force_avx2(false);
    let all = simd_paths();
    let fast = load_ours(&path, WeightFormat::Q8_0);
    let (fp, fd) = ours_two_steps(&fast, &prompt);
    force_avx2(true);
    let kept = simd_paths();
    let slow = load_ours(&path, WeightFormat::Q8_0);
    let (sp, sd) = ours_two_steps(&slow, &prompt);
    force_avx2(false);
    println!("paths: {all:?}; kept to AVX2: {kept:?}");
    println!(
        "layouts: {:?}; kept to AVX2: {:?}",
        fast.layouts(),
        slow.layouts()
    );
    assert!(kept.iter().all(|p| !p.starts_with("avx512")), "{kept:?}");
    assert!(
        slow.layouts().keys().all(|k| !k.contains("VNNI")),
        "{:?}",
        slow.layouts()
    );
    if all.contains(&"avx512-vnni") {
        assert!(fast.layouts().keys().any(|k| k.contains("VNNI")));
    } else {
        println!("this CPU has no AVX-512 VNNI: both runs used the same kernels");
    }
    compare_logits("prefill, AVX2 against default", &sp, &fp, 0.2, 0.05);
    compare_logits("decode, AVX2 against default", &sd, &fd, 0.2, 0.05);
}
