use helmholtz::math::numerics::*;
use std::time::Instant;
fn main() {
    let n = 1 << 20;
    let src: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 0.1).collect();
    let u: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let mut a = src.clone();
    let mut s = vec![0.0f32; n];
    let mut out = vec![0.0f32; n];
    for _ in 0..3 {
        let t = Instant::now();
        for (o, &x) in out.iter_mut().zip(&src) { *o = exp_neg_f32(-x.abs()); }
        let t1 = t.elapsed().as_secs_f64() / n as f64 * 1e9;
        let t = Instant::now();
        for (o, &x) in out.iter_mut().zip(&src) { let (a, b) = sigmoid_softplus_f32(x); *o = a + b; }
        let t2 = t.elapsed().as_secs_f64() / n as f64 * 1e9;
        a.copy_from_slice(&src);
        let t = Instant::now();
        let mut tot = 0.0;
        let mut terms = vec![0.0f32; n]; bernoulli_terms(&mut a, &mut s, Some(&u), &mut terms); tot += terms.iter().map(|&t| t as f64).sum::<f64>();
        let t3 = t.elapsed().as_secs_f64() / n as f64 * 1e9;
        println!("exp {t1:.2} ns, sig+sp {t2:.2} ns, column {t3:.2} ns  {tot} {}", out[5]);
    }
}
