//! The user's own files: the same points written as CSV, as NPY and as NPZ give the same fit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{scratch, text};

/// 300 points in 2-D from three clusters, mapped into [0, 1] (the range the data loader
/// accepts until transforms exist) on a grid of 1/512 so that every value is exact in f32 and in
/// decimal.
fn points() -> Vec<[f64; 2]> {
    let centres = [(-3.0, 0.0), (2.0, 2.5), (1.5, -2.0)];
    (0..300)
        .map(|j| {
            let (cx, cy) = centres[j % 3];
            let a = ((j * 37 % 101) as f64 / 101.0 - 0.5) * 2.0;
            let b = ((j * 53 % 97) as f64 / 97.0 - 0.5) * 2.0;
            let snap = |v: f64| ((v * 64.0).round() / 64.0 + 4.0) / 8.0;
            [snap(cx + a), snap(cy + 0.6 * a + 0.8 * b)]
        })
        .collect()
}

/// The `.npy` bytes of an (n, 2) float64 array, as the library writes them.
fn npy_bytes(points: &[[f64; 2]]) -> Vec<u8> {
    let values = faer::Mat::from_fn(points.len(), 2, |i, j| points[i][j]);
    helmholtz::data::npy::npy_bytes(values.as_ref())
}

/// A one-member stored zip archive (as `np.savez(path, x=…)` lays it out).
fn npz_bytes(member: &[u8]) -> Vec<u8> {
    let name = b"x.npy";
    let mut common = Vec::new();
    common.extend(20u16.to_le_bytes());
    common.extend([0u8; 12]); // flags, method 0 (stored), time, date, crc
    common.extend((member.len() as u32).to_le_bytes());
    common.extend((member.len() as u32).to_le_bytes());
    common.extend((name.len() as u16).to_le_bytes());
    common.extend(0u16.to_le_bytes());
    let mut out = b"PK\x03\x04".to_vec();
    out.extend(&common);
    out.extend(name);
    out.extend(member);
    let central_at = out.len() as u32;
    let mut central = b"PK\x01\x02".to_vec();
    central.extend(20u16.to_le_bytes());
    central.extend(&common);
    central.extend([0u8; 10]);
    central.extend(0u32.to_le_bytes());
    central.extend(name);
    out.extend(&central);
    out.extend(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(central_at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// Runs `helmholtz fit` of a 3-component diagonal GMM on `file` with extra `[data]` keys.
fn run_fit(dir: &Path, source: &str, file: &str, keys: &str) -> (std::process::Output, PathBuf) {
    let config = dir.join(format!("{source}-{file}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"own\"\nseed = 0\n[data]\nsource = \"{source}\"\ntrain = \"{}\"\n{keys}\n[model]\nkind = \"gmm-diagonal\"\nlatents = 3\n[train]\nmax_steps = 500\ntol = 1e-12\n",
            dir.join(file).display()
        ),
    )
    .unwrap();
    let out = dir.join(format!("run-{file}"));
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .arg("fit")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    (output, out)
}

fn fit(dir: &Path, source: &str, file: &str, keys: &str) -> String {
    let (output, out) = run_fit(dir, source, file, keys);
    assert!(output.status.success(), "{}", text(&output));
    std::fs::read_to_string(out.join("model.json")).unwrap()
}

#[test]
fn csv_npy_and_npz_files_of_the_same_points_give_the_same_fit() {
    let dir = scratch("own-data", "formats");
    let points = points();
    let csv: String = std::iter::once("x,y\n".to_string())
        .chain(points.iter().map(|[x, y]| format!("{x},{y}\n")))
        .collect();
    std::fs::write(dir.join("points.csv"), csv).unwrap();
    let npy = npy_bytes(&points);
    std::fs::write(dir.join("points.npy"), &npy).unwrap();
    std::fs::write(dir.join("points.npz"), npz_bytes(&npy)).unwrap();
    let from_csv = fit(&dir, "csv", "points.csv", "");
    assert_eq!(fit(&dir, "npy", "points.npy", ""), from_csv);
    assert_eq!(fit(&dir, "npy", "points.npz", ""), from_csv);
    // The header of points.csv was decided from its first row: the log says so.
    let config = dir.join("csv-points.csv.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .arg("fit")
        .arg(&config)
        .arg("--out")
        .arg(dir.join("run-noisy"))
        .output()
        .unwrap();
    let log = text(&output);
    assert!(
        output.status.success() && log.contains("row 1 read as a header (x, y)"),
        "{log}"
    );
    // Tab-separated, with a header row said to be there.
    let tsv: String = std::iter::once("x\ty\n".to_string())
        .chain(points.iter().map(|[x, y]| format!("{x}\t{y}\n")))
        .collect();
    std::fs::write(dir.join("points.tsv"), tsv).unwrap();
    let keys = "header = true\ndelimiter = \"\\t\"";
    assert_eq!(fit(&dir, "csv", "points.tsv", keys), from_csv);
    // A label column, by header name or by index, is left out of the data.
    let labelled: String = std::iter::once("x,class,y\n".to_string())
        .chain(
            points
                .iter()
                .enumerate()
                .map(|(i, [x, y])| format!("{x},{},{y}\n", i % 3)),
        )
        .collect();
    std::fs::write(dir.join("labelled.csv"), labelled).unwrap();
    assert_eq!(
        fit(&dir, "csv", "labelled.csv", "label = \"class\""),
        from_csv
    );
    std::fs::copy(dir.join("labelled.csv"), dir.join("labelled1.csv")).unwrap();
    assert_eq!(fit(&dir, "csv", "labelled1.csv", "label = 1"), from_csv);
    let (output, _) = run_fit(&dir, "csv", "labelled.csv", "label = \"kind\"");
    let message = text(&output);
    assert!(
        !output.status.success() && message.contains("data.label = column \"kind\" does not exist"),
        "{message}"
    );
    // A delimiter that cannot be one is refused naming the key; nothing is created.
    std::fs::copy(dir.join("points.csv"), dir.join("again.csv")).unwrap();
    let (output, out) = run_fit(&dir, "csv", "again.csv", "delimiter = \"é\"");
    let message = text(&output);
    assert!(
        !output.status.success() && message.contains("data.delimiter"),
        "{message}"
    );
    assert!(!out.exists());

    // A file that is not NPY is refused with a message naming it.
    std::fs::write(dir.join("bad.npy"), "1,2\n3,4\n").unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"bad\"\n[data]\nsource = \"npy\"\ntrain = \"{}\"\n[model]\nkind = \"gmm-diagonal\"\nlatents = 2\n",
            dir.join("bad.npy").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(["fit", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(dir.join("run-bad"))
        .output()
        .unwrap();
    let message = text(&output);
    assert!(!output.status.success());
    assert!(
        message.contains("bad.npy") && message.contains("NUMPY") && !message.contains("panicked"),
        "{message}"
    );
    assert!(
        !dir.join("run-bad").exists(),
        "nothing is created for bad data"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sparse coding on the user's own patches: a CSV of 4×4 patches (sparse sums of bars with a
/// little noise, drawn here) trains the patches pipeline without any image; the held-out rows
/// are the last `test_n`. A width that is not size² is refused naming the file.
#[test]
fn sparse_coding_trains_on_a_table_of_patches() {
    let dir = scratch("own-data", "patches");
    let mut rng = 12345u64;
    let mut uniform = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = String::new();
    for _ in 0..300 {
        let mut patch = [0.0f64; 16];
        for bar in 0..8 {
            if uniform() < 0.25 {
                let weight = 1.0 + uniform();
                for k in 0..4 {
                    let pixel = if bar < 4 {
                        bar * 4 + k
                    } else {
                        k * 4 + bar - 4
                    };
                    patch[pixel] += weight;
                }
            }
        }
        let row: Vec<String> = patch
            .iter()
            .map(|v| format!("{}", v + 0.05 * (uniform() - 0.5)))
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("patches.csv"), csv).unwrap();
    let config = dir.join("patches.toml");
    std::fs::write(
        &config,
        format!("name = \"own-patches\"\n[data]\nsource = \"patches\"\ntrain = \"{}\"\nsize = 4\nn = 1000\ntest_n = 50\n[model]\nn_latents = 8\nposterior = \"diagonal\"\nscale_floor = 1e-3\n[train]\nmethod = \"em\"\nmax_iters = 20\nbatch_size = 50\nepochs = 2\nlr = 0.5\n", dir.join("patches.csv").display()),
    )
    .unwrap();
    let out = dir.join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .arg("sparse")
        .arg(&config)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let metrics = std::fs::read_to_string(out.join("seed-0/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(last["test"]["elbo"].as_f64().unwrap().is_finite(), "{last}");
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .arg("sparse")
        .arg(&config)
        .args(["--set", "data.size=3", "--out"])
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    let message = text(&output);
    assert!(
        !output.status.success() && message.contains("patches.csv has rows of 16 values"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A Helmholtz machine trained on a CSV with a label column evaluates another file read the
/// same way (`eval --data`); a file of another width is refused naming both dimensions.
#[test]
fn eval_data_scores_a_new_file_as_the_run_read_its_own() {
    let dir = scratch("own-data", "eval-data");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/embedded/digits.csv.gz");
    let config = dir.join("rws.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"rws\"\n[data]\nsource = \"csv\"\ntrain = \"{}\"\nlabel = 64\nscale = 0.0625\nbinarize = \"fixed\"\n[model]\nhidden = [16, 4]\n[train]\nalgorithm = \"rws\"\nk = 5\nbatch_size = 50\nepochs = 2\n[optimizer]\nlr = 0.003\nrule = {{ kind = \"adam\" }}\n",
            digits.display()
        ),
    )
    .unwrap();
    let run = dir.join("run");
    let helmholtz = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_helmholtz"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = helmholtz(&[
        "train".as_ref(),
        config.as_os_str(),
        "--quiet".as_ref(),
        "--out".as_ref(),
        run.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = helmholtz(&[
        "eval".as_ref(),
        run.as_os_str(),
        "--data".as_ref(),
        digits.as_os_str(),
        "--points".as_ref(),
        "100".as_ref(),
        "--k".as_ref(),
        "20".as_ref(),
    ]);
    let message = text(&out);
    assert!(
        out.status.success() && message.contains("100 points, log-likelihood -"),
        "{message}"
    );
    // 66 columns: 65 pixels and the label.
    let narrow = dir.join("wide.csv");
    let row = vec!["1"; 66].join(",");
    std::fs::write(&narrow, format!("{row}\n{row}\n")).unwrap();
    let out = helmholtz(&[
        "eval".as_ref(),
        run.as_os_str(),
        "--data".as_ref(),
        narrow.as_os_str(),
    ]);
    let message = text(&out);
    assert!(
        !out.status.success()
            && message.contains("dimension 65; the model was trained on dimension 64"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
