//! Image denoising with a learned sparse-coding dictionary: the probabilistic model's posterior
//! means against MAP codes (FISTA) under the same dictionary and prior.
//!
//! A held-out image gets Gaussian noise; overlapping patches (every `stride` pixels) have their
//! mean removed and are whitened with the run's ZCA filter; codes are inferred, mapped back
//! through the dictionary and the inverse filter, the patch means are added back, and
//! overlapping estimates are averaged per pixel. Posterior means come from the E-step with the
//! dictionary fixed (λ, σ² in closed form per batch, as in training); MAP codes minimise
//! ½‖y − Wz‖² + Σ_h κ_h|z_h| with κ_h = σ²/λ_h taken from the same fitted posteriors. A sweep
//! of κ scaled by 1/16 … 4 reports the best MAP result in hindsight (an oracle: it looks at the
//! clean image).

use std::path::Path;

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::SparseConfig;
use super::config::WhitenKind;
use super::model::SparseRunModel;
use helmholtz::data::patches::{GrayImage, Whitening, read_images};
use helmholtz::error::{Error, Result};
use helmholtz::math::rng::{Stream, ids};
use helmholtz::objectives::sparse_coding::entropy_objective;
use helmholtz::optim::fista::fista;
use helmholtz::run::CONFIG_FILE;
use helmholtz::train::sparse_coding::evaluate;

/// What to denoise and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiseConfig {
    /// A PNG in the run's image directory, not used for training.
    pub image: String,
    /// Standard deviation of the added Gaussian noise (pixel values in [0, 1]).
    pub noise_sd: f64,
    /// Distance between neighbouring patches.
    pub stride: usize,
    /// FISTA iterations.
    pub map_iterations: usize,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for DenoiseConfig {
    fn default() -> Self {
        DenoiseConfig {
            image: "camera.png".into(),
            noise_sd: 0.1,
            stride: 4,
            map_iterations: 300,
            seed: 0,
        }
    }
}

/// PSNRs in dB (peak 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DenoiseOutcome {
    /// The noisy image.
    pub noisy: f64,
    /// Posterior means of the probabilistic model.
    pub posterior: f64,
    /// MAP codes with κ_h = σ²/λ_h.
    pub map: f64,
    /// The best MAP result over κ scaled by 1/16, 1/8, …, 4 (oracle).
    pub map_best: f64,
    /// The κ scale of `map_best`.
    pub map_best_scale: f64,
    /// Patches denoised.
    pub patches: usize,
}

/// The clean, noisy, posterior-mean and MAP images (row-major, like the input).
#[derive(Clone, Debug)]
pub struct DenoisedImages {
    /// Height and width.
    pub shape: (usize, usize),
    /// Clean, noisy, posterior, MAP.
    pub images: [Vec<f64>; 4],
}

/// Peak signal-to-noise ratio of `estimate` against `clean` for values in [0, 1].
pub fn psnr(clean: &[f64], estimate: &[f64]) -> f64 {
    let mse = clean
        .iter()
        .zip(estimate)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / clean.len() as f64;
    -10.0 * mse.log10()
}

/// Denoises `config.image` with the model of the patches run in `run_dir`.
pub fn denoise_run(
    run_dir: &Path,
    config: &DenoiseConfig,
) -> Result<(DenoiseOutcome, DenoisedImages)> {
    check_denoise(config)?;
    let run = SparseConfig::load(&run_dir.join(CONFIG_FILE), &[])?;
    if run.data.source != "patches" {
        return Err(Error::Config(format!(
            "{} is not a patches run",
            run_dir.display()
        )));
    }
    let model = SparseRunModel::open(run_dir)?;
    let dir = run
        .data
        .dir
        .clone()
        .unwrap_or_else(|| helmholtz::data::default_data_dir().join("natural"));
    if run.data.images.contains(&config.image) {
        return Err(Error::Config(format!(
            "{} was used for training; pick a held-out image",
            config.image
        )));
    }
    let image = read_images(&dir, &[config.image.as_str()])?.remove(0);
    denoise_image(&model, &image, config)
}

fn check_denoise(config: &DenoiseConfig) -> Result<()> {
    if config.stride == 0 || !(config.noise_sd.is_finite() && config.noise_sd > 0.0) {
        return Err(Error::Config(format!(
            "denoising needs stride ≥ 1 and a positive noise_sd, got {} and {}",
            config.stride, config.noise_sd
        )));
    }
    Ok(())
}

/// Adds Gaussian noise of `config.noise_sd` (from `config.seed`) to the clean `image` (values
/// in [0, 1]) and denoises it with the model of a patches run, or of a points run whose points
/// are square images (`config.image` is not used): posterior means and MAP codes, as
/// [`denoise_run`].
pub fn denoise_image(
    model: &SparseRunModel,
    image: &GrayImage,
    config: &DenoiseConfig,
) -> Result<(DenoiseOutcome, DenoisedImages)> {
    check_denoise(config)?;
    let run = &model.config;
    let (d, h) = (model.dictionary.nrows(), model.dictionary.ncols());
    let w = &model.dictionary;
    let size = run.data.image_side(d).ok_or_else(|| {
        Error::Config(format!(
            "{}: its points of {d} values are not square images, so it cannot denoise one",
            model.dir.display()
        ))
    })?;
    if d != size * size {
        return Err(Error::format(
            model.dir.join("model.safetensors"),
            format!("a {d}-dimensional dictionary for {size}×{size} patches"),
        ));
    }
    // The run's whitening filter, or none for points used as given.
    let whitening: Option<&Whitening> = match (&model.whitening, run.data.whitening()) {
        (Some(whitening), _) => Some(whitening),
        (None, WhitenKind::None) => None,
        (None, _) => {
            return Err(Error::Config(format!(
                "{}: denoising maps patches back through the inverse of a ZCA filter; this run \
                 filtered whole images (Olshausen–Field), whose low-pass filter has no inverse",
                model.dir.display()
            )));
        }
    };
    let (height, width) = (image.height, image.width);
    if height < size || width < size || image.values.len() != height * width {
        return Err(Error::Dimension(format!(
            "{}: an image of {height}×{width} ({} values) smaller than a {size}×{size} patch, or of the wrong size",
            image.path.display(),
            image.values.len()
        )));
    }
    let mut rng = Stream::new(config.seed, &[ids::SAMPLE]);
    let noisy: Vec<f64> = image
        .values
        .iter()
        .map(|v| v + config.noise_sd * rng.normal())
        .collect();

    let positions = |extent: usize| {
        let mut p: Vec<usize> = (0..=extent - size).step_by(config.stride).collect();
        if *p.last().expect("one position") != extent - size {
            p.push(extent - size);
        }
        p
    };
    let grid: Vec<(usize, usize)> = positions(height)
        .into_iter()
        .flat_map(|t| positions(width).into_iter().map(move |l| (t, l)))
        .collect();
    let m = grid.len();
    // Patches cut from images had their means removed in training; points are used as given.
    let centre = run.data.source == "patches";
    let mut means = vec![0.0; m];
    let mut centred = Mat::<f64>::zeros(d, m);
    for (j, &(top, left)) in grid.iter().enumerate() {
        for p in 0..d {
            centred[(p, j)] = noisy[(top + p / size) * width + left + p % size];
        }
        if centre {
            means[j] = (0..d).map(|p| centred[(p, j)]).sum::<f64>() / d as f64;
        }
        for p in 0..d {
            centred[(p, j)] -= means[j];
        }
    }
    let white = match whitening {
        Some(whitening) => whitening.apply(centred.as_ref()),
        None => centred,
    };

    let coding = model.per_point_template()?;
    let (_, fitted) = evaluate(
        &coding,
        white.as_ref(),
        run.train.batch_size,
        &run.train.lbfgs(),
    )?;
    let posterior_codes = Mat::from_fn(h, m, |r, c| fitted.mean(c)[r]);
    let terms = entropy_objective(&fitted, white.as_ref(), 1.0, None)?;
    let kappa: Vec<f64> = terms.lambda.iter().map(|l| terms.sigma2 / l).collect();

    let assemble = |codes: &Mat<f64>| -> Vec<f64> {
        let patches = match whitening {
            Some(whitening) => &whitening.inverse * (w * codes),
            None => w * codes,
        };
        let mut sum = vec![0.0; height * width];
        let mut count = vec![0.0; height * width];
        for (j, &(top, left)) in grid.iter().enumerate() {
            for p in 0..d {
                let i = (top + p / size) * width + left + p % size;
                sum[i] += patches[(p, j)] + means[j];
                count[i] += 1.0;
            }
        }
        sum.iter().zip(&count).map(|(s, c)| s / c).collect()
    };
    let posterior = assemble(&posterior_codes);
    let mut map = Vec::new();
    let mut best = (f64::NEG_INFINITY, 1.0);
    for scale in [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0] {
        let scaled: Vec<f64> = kappa.iter().map(|k| k * scale).collect();
        let codes = fista(w.as_ref(), white.as_ref(), &scaled, config.map_iterations)?;
        let estimate = assemble(&codes);
        let value = psnr(&image.values, &estimate);
        if value > best.0 {
            best = (value, scale);
        }
        if scale == 1.0 {
            map = estimate;
        }
    }
    let outcome = DenoiseOutcome {
        noisy: psnr(&image.values, &noisy),
        posterior: psnr(&image.values, &posterior),
        map: psnr(&image.values, &map),
        map_best: best.0,
        map_best_scale: best.1,
        patches: m,
    };
    Ok((
        outcome,
        DenoisedImages {
            shape: (height, width),
            images: [image.values.clone(), noisy, posterior, map],
        },
    ))
}
