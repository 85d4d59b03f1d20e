#![allow(clippy::unwrap_used, clippy::expect_used)]
use candle_core::{Device, Tensor};
use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama::ModelWeights;
use switchyard_adapters::local::model::{Llama, Step, WeightFormat};
fn argmax(v: &[f32]) -> u32 { let mut b=0; for (i,x) in v.iter().enumerate() { if *x>v[b] {b=i;} } b as u32 }
fn main() {
    let path = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    let prompt: Vec<u32> = vec![1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let mut toks = prompt.clone(); let mut out = vec![];
    let x = Tensor::new(prompt.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let l = m.forward(&x, 0).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    println!("candle first logits {:?}", &l[..5]);
    let mut next = argmax(&l);
    for _ in 0..10 { out.push(next); toks.push(next);
        let x = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let l = m.forward(&x, toks.len()-1).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        next = argmax(&l); }
    println!("candle: {out:?}");
    for fmt in [WeightFormat::AsStored, WeightFormat::Q8_0] {
        let mut f = std::fs::File::open(path).unwrap();
        let ct = gguf_file::Content::read(&mut f).unwrap();
        let m = Llama::from_gguf(&ct, &mut f, fmt).unwrap();
        let mut c = m.new_cache();
        let l = m.forward(&mut [Step{cache:&mut c, tokens:&prompt}]).unwrap();
        let l = Llama::row(&l,0).unwrap();
        println!("ours first logits {:?}", &l[..5]);
        let mut next = argmax(&l); let mut out = vec![];
        for _ in 0..10 { out.push(next);
            let l = m.forward(&mut [Step{cache:&mut c, tokens:&[next]}]).unwrap();
            next = argmax(&Llama::row(&l,0).unwrap()); }
        println!("ours {fmt:?}: {out:?}");
    }
}
