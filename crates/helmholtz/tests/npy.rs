//! Files written by NumPy 2.4.6 (`tests/fixtures`): `np.save` of a 4 × 3 float64 array x = arange(12)/4
//! in C order, the same as big-endian float32 in Fortran order, and `np.savez` /
//! `np.savez_compressed` archives holding x and the labels y = [0, 1, 1, 0].

use std::path::PathBuf;

use helmholtz::data::npy::{read_npy, read_npz, read_npz_member};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn x() -> Vec<f64> {
    (0..12).map(|v| v as f64 / 4.0).collect()
}

#[test]
fn arrays_numpy_saved_read_back_exactly() {
    let c = read_npy(&fixture("x_f8.npy")).unwrap();
    assert_eq!((c.shape.clone(), c.data.clone()), (vec![4, 3], x()));
    let f = read_npy(&fixture("x_f4_fortran.npy")).unwrap();
    assert_eq!(
        f, c,
        "Fortran order and big-endian f4 give the same C-order values"
    );
    let data = c.to_dataset(&fixture("x_f8.npy"), 1.0).unwrap();
    // Four samples of dimension 3: sample 2 (0-based) is row 2 of x.
    assert_eq!((data.dim(), data.n_samples()), (3, 4));
    assert_eq!(
        [data.x[(0, 2)], data.x[(1, 2)], data.x[(2, 2)]],
        [1.5, 1.75, 2.0]
    );
}

#[test]
fn npz_archives_plain_and_compressed_hold_x_and_y() {
    for name in ["xy.npz", "xy_compressed.npz"] {
        let members = read_npz(&fixture(name)).unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y"], "{name}");
        assert_eq!(members[0].1.data, x(), "{name}");
        assert_eq!(members[1].1.data, vec![0.0, 1.0, 1.0, 0.0], "{name}");
        let y = read_npz_member(&fixture(name), Some("y")).unwrap();
        assert_eq!(y.shape, vec![4]);
    }
}
