//! Tests of [`super`]: the sampler's choices, and its shortcuts against plain definitions.

use super::*;
use crate::testing::TestRng;

fn params(temperature: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        seed: 7,
        ..SamplingParams::default()
    }
}

/// Whether the sampler's vector kernels (`weights`, `above`: AVX-512F) run on this CPU.
fn vector() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::kernels::avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Says which path of the sampler's kernels a test that samples ran (through the dispatch).
fn say_path(test: &str) {
    let path = if vector() { "avx512f" } else { "portable" };
    println!("{test}: ran the sampler's {path} weight kernels");
}

#[test]
fn greedy_takes_the_largest() {
    let mut s = Sampler::new(params(0.0));
    assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
}

#[test]
fn top_k_one_and_top_p_tiny_are_greedy() {
    say_path("top_k_one_and_top_p_tiny_are_greedy");
    let mut s = Sampler::new(SamplingParams {
        top_k: 1,
        ..params(1.0)
    });
    assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
    let mut s = Sampler::new(SamplingParams {
        top_p: 0.01,
        ..params(1.0)
    });
    for _ in 0..50 {
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
    }
}

#[test]
fn the_seed_makes_it_reproducible_and_top_k_limits_it() {
    say_path("the_seed_makes_it_reproducible_and_top_k_limits_it");
    let logits = [1.0f32, 1.0, 1.0, 1.0, 0.5, 0.5];
    let run = |seed: u64, top_k: usize| -> Vec<u32> {
        let mut s = Sampler::new(SamplingParams {
            seed,
            top_k,
            ..params(1.0)
        });
        (0..64)
            .map(|_| s.sample(&mut logits.clone(), &[], &[]))
            .collect()
    };
    assert_eq!(run(1, 0), run(1, 0));
    assert_ne!(run(1, 0), run(2, 0));
    let all = run(3, 0);
    assert!(all.iter().any(|&t| t >= 4), "{all:?}");
    assert!(run(3, 4).iter().all(|&t| t < 4));
}

#[test]
fn penalties_push_repeated_tokens_down() {
    let mut s = Sampler::new(SamplingParams {
        repetition_penalty: 2.0,
        ..params(0.0)
    });
    // Token 1 (3.0 -> 1.5) falls behind token 2 (2.0).
    assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[1], &[]), 2);
    let mut s = Sampler::new(SamplingParams {
        frequency_penalty: 0.6,
        ..params(0.0)
    });
    assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[1, 1]), 2);
    let mut s = Sampler::new(SamplingParams {
        presence_penalty: 0.5,
        ..params(0.0)
    });
    assert_eq!(s.sample(&mut [0.1, 3.0, 2.9], &[], &[1, 1]), 2);
}

/// Top-k then top-p by sorting every token: the definition the floors must reproduce.
fn by_full_sort(w: &[f32], top_k: Option<usize>, top_p: Option<f64>) -> Vec<u32> {
    let mut all: Vec<u32> = (0..w.len() as u32)
        .filter(|&i| w[i as usize] > 0.0)
        .collect();
    all.sort_by(|&a, &b| heavier(w, a, b));
    if let Some(k) = top_k {
        all.truncate(k);
    }
    if let Some(p) = top_p {
        let total: f64 = all.iter().map(|&i| f64::from(w[i as usize])).sum();
        let mut acc = 0.0;
        if let Some(n) = all.iter().position(|&i| {
            acc += f64::from(w[i as usize]);
            acc >= p * total
        }) {
            all.truncate(n + 1);
        }
    }
    all
}

#[test]
fn candidates_match_a_full_sort() {
    let fast = crate::kernels::report_path("candidates' floor counts", "avx512f", vector());
    let dispatched = if fast { "avx512f" } else { "portable" };
    let mut g = TestRng::new(5);
    let n = 3000;
    // Peaked (one token far ahead), flat, and with ties and zeros.
    let shapes: [&dyn Fn(usize, f32) -> f32; 3] = [
        &|i, u| {
            if i == 17 {
                1.0
            } else {
                (u * 30.0 - 40.0).exp()
            }
        },
        &|_, u| 0.5 + 0.5 * u,
        &|i, u| {
            if i % 3 == 0 {
                0.0
            } else {
                (u * 8.0).round() / 8.0
            }
        },
    ];
    for shape in shapes {
        let w: Vec<f32> = (0..n).map(|i| shape(i, g.unit())).collect();
        let total: f64 = w.iter().map(|&x| f64::from(x)).sum();
        // The floors' counts and masses, both paths, against a plain count and f64 sum (the
        // vector path sums in f32 lanes).
        for floor in [0.0, 1e-6, 0.3, 0.9, 2.0] {
            let kept = w.iter().filter(|&&x| x >= floor && x > 0.0);
            let want = (
                kept.clone().count(),
                kept.map(|&x| f64::from(x)).sum::<f64>(),
            );
            for (path, got) in [
                (dispatched, above(&w, floor)),
                ("portable", above_portable(&w, floor)),
            ] {
                assert_eq!(got.0, want.0, "{path}: count above {floor}");
                assert!(
                    (got.1 - want.1).abs() <= 1e-4 * want.1,
                    "{path}: mass above {floor}: {} vs {}",
                    got.1,
                    want.1
                );
            }
        }
        for top_k in [None, Some(1), Some(5), Some(40), Some(2500)] {
            for top_p in [None, Some(0.1), Some(0.5), Some(0.9), Some(0.999)] {
                if top_k.is_none() && top_p.is_none() {
                    continue;
                }
                assert_eq!(
                    candidates(&w, total, top_k, top_p),
                    by_full_sort(&w, top_k, top_p),
                    "top_k {top_k:?} top_p {top_p:?}"
                );
            }
        }
    }
}

#[test]
fn weights_and_block_sums_match_the_plain_formula() {
    let mut g = TestRng::new(9);
    let mut logits: Vec<f32> = (0..1000).map(|_| g.unit() * 30.0 - 20.0).collect();
    logits[3] = f32::NEG_INFINITY;
    logits[700] = f32::NAN;
    let max = finite_max(&logits);
    assert_eq!(
        max,
        logits
            .iter()
            .copied()
            .filter(|l| l.is_finite())
            .fold(f32::MIN, f32::max)
    );
    let fast = crate::kernels::report_path("sampling weights", "avx512f", vector());
    let dispatched = if fast { "avx512f" } else { "portable" };
    let mut w = vec![0.0; 1000];
    let mut sums = vec![0.0; 1000usize.div_ceil(BLOCK)];
    weights(&logits, max, 1.0 / 0.7, &mut w, &mut sums);
    let mut w_portable = vec![0.0; 1000];
    let mut sums_portable = vec![0.0; sums.len()];
    weights_portable(&logits, max, 1.0 / 0.7, &mut w_portable, &mut sums_portable);
    for (path, w, sums) in [
        (dispatched, &w, &sums),
        ("portable", &w_portable, &sums_portable),
    ] {
        for (i, (&x, &l)) in w.iter().zip(&logits).enumerate() {
            let want = if l.is_finite() {
                ((l - max) * (1.0 / 0.7)).exp()
            } else {
                0.0
            };
            assert!(
                (x - want).abs() <= 1e-6 * want.max(1e-30),
                "{path}: [{i}] {x} vs {want}"
            );
        }
        for (b, &s) in sums.iter().enumerate() {
            let want: f64 = w[b * BLOCK..w.len().min((b + 1) * BLOCK)]
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            assert!(
                (s - want).abs() <= 1e-6 * want,
                "{path}: block {b}: {s} vs {want}"
            );
        }
    }
    // Drawing through the block sums lands where a walk over every token does.
    let exact: Vec<f64> = w
        .chunks(BLOCK)
        .map(|c| c.iter().map(|&x| f64::from(x)).sum())
        .collect();
    let total: f64 = exact.iter().sum();
    for k in 0..200 {
        let r = total * (f64::from(k) + 0.5) / 200.0;
        assert_eq!(draw_by_id(&w, &exact, r), draw(&w, 0..1000, r), "r = {r}");
    }
    // Past the total (rounding): the last token with weight, as the plain walk gives.
    let last = (0..1000u32).rev().find(|&i| w[i as usize] > 0.0);
    assert_eq!(draw_by_id(&w, &exact, total * 1.001), last);
    assert_eq!(draw(&w, 0..1000, total * 1.001), last);
    // The first index of the largest, ties included.
    logits[998] = max;
    let first = logits.iter().position(|&l| l == max).unwrap() as u32;
    assert!(first < 998);
    assert_eq!(argmax(&logits), first);
    assert_eq!(argmax(&[1.0, 5.0, 5.0]), 1);
}

/// Drawn frequencies follow the softmax: logits `ln 1, ln 2, ln 3` give 1/6, 2/6, 3/6.
#[test]
fn draws_follow_the_softmax() {
    say_path("draws_follow_the_softmax");
    let mut s = Sampler::new(params(1.0));
    let mut counts = [0u32; 3];
    for _ in 0..6000 {
        let t = s.sample(&mut [0.0, 2f32.ln(), 3f32.ln()], &[], &[]);
        counts[t as usize] += 1;
    }
    for (i, &c) in counts.iter().enumerate() {
        let want = (i + 1) as f64 / 6.0;
        let got = f64::from(c) / 6000.0;
        assert!((got - want).abs() < 0.025, "token {i}: {got} vs {want}");
    }
}
