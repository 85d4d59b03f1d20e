//! Training on small synthetic problems.

use super::*;
use crate::classifier::Scorer;

fn separable() -> (Vec<Vec<f32>>, Vec<usize>, Vec<String>) {
    let mut rng = Rng::new(1);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..300 {
        let c = i % 3;
        let noise = (rng.next_u64() % 100) as f32 / 500.0;
        let mut v = vec![noise; 4];
        v[c] += 1.0;
        x.push(v);
        y.push(c);
    }
    (x, y, vec!["a".into(), "b".into(), "c".into()])
}

#[test]
fn learns_a_separable_problem() {
    let (x, y, labels) = separable();
    for hidden in [0, 16] {
        let options = TrainOptions {
            hidden,
            max_epochs: 60,
            learning_rate: 1e-2,
            ..TrainOptions::default()
        };
        let mut epochs = 0;
        let head = train(&x, &y, labels.clone(), "fp".into(), &options, |_| {
            epochs += 1
        })
        .unwrap();
        assert!(epochs > 0);
        assert_eq!(head.verdict(&[1.0, 0.0, 0.0, 0.0]).unwrap().class, "a");
        assert_eq!(head.verdict(&[0.0, 0.0, 1.0, 0.1]).unwrap().class, "c");
    }
}

#[test]
fn an_ensemble_keeps_distinct_networks_trained_for_the_best_epoch_count() {
    let (x, y, labels) = separable();
    let options = TrainOptions {
        hidden: 8,
        max_epochs: 30,
        patience: 5,
        learning_rate: 1e-2,
        ensemble: 3,
        ..TrainOptions::default()
    };
    let mut reports = Vec::new();
    let head = train(&x, &y, labels, "fp".into(), &options, |r| reports.push(r)).unwrap();
    assert_eq!(head.members.len(), 3);
    assert_ne!(head.members[0][0].weight, head.members[1][0].weight);
    assert_ne!(head.members[1][0].weight, head.members[2][0].weight);
    let best = reports.iter().rfind(|r| r.member == 0).unwrap().best_epoch;
    for k in 1..=3 {
        let epochs = reports.iter().filter(|r| r.member == k).count();
        assert_eq!(epochs, best, "network {k}");
    }
    assert_eq!(head.verdict(&[0.0, 1.0, 0.0, 0.0]).unwrap().class, "b");
}

#[test]
fn the_same_seed_trains_the_same_head_and_another_seed_does_not() {
    let (x, y, labels) = separable();
    let options = |seed| TrainOptions {
        hidden: 8,
        max_epochs: 10,
        learning_rate: 1e-2,
        dropout: 0.3,
        ensemble: 2,
        seed,
        ..TrainOptions::default()
    };
    let fit = |seed| train(&x, &y, labels.clone(), "fp".into(), &options(seed), |_| {}).unwrap();
    let weights = |h: &Head| -> Vec<Vec<f32>> {
        h.members
            .iter()
            .flat_map(|m| m.iter().flat_map(|l| [l.weight.clone(), l.bias.clone()]))
            .collect()
    };
    let (a, b, c) = (fit(3), fit(3), fit(4));
    // Initialisation, order and dropout all come from the seed: bit-for-bit equal weights.
    assert_eq!(weights(&a), weights(&b));
    assert_ne!(weights(&a), weights(&c));
}

#[test]
fn dropout_zeroes_about_p_and_keeps_the_expected_value() {
    let mut rng = Rng::new(9);
    let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
    let out: Vec<f32> = net::dropout(&x, 0.25, &mut rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let zeros = out.iter().filter(|v| **v == 0.0).count();
    assert!(
        (2200..2800).contains(&zeros),
        "{zeros} of 10000 zeroed at p=0.25"
    );
    let mean = out.iter().sum::<f32>() / out.len() as f32;
    assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
}
