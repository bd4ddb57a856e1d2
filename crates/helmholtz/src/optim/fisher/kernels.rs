//! The packed layouts of the cached per-unit operators and the kernels that store and apply
//! them: column-packed Cholesky factors, explicit inverses in blocks of four columns tiled 4×4,
//! f16/f32/f64 element types, and the AVX2/FMA/F16C kernels chosen at run time.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::{Compute, Operator, Packed, Values};
use faer::Mat;

/// Element types of the packed operators.
pub(super) trait Stored: Copy + Send + Sync {
    fn to_f64(self) -> f64;
    /// The fastest [`Rows`] kernel this CPU runs for the type.
    fn rows_kernel() -> Rows<Self>;
    /// Stores the packed operator `values` (consumed as scratch) in `out` and returns the scale
    /// the stored numbers are to be multiplied by.
    fn store(values: &mut [f64], out: &mut [Self]) -> f64;
}

/// Whether the x86 kernels (AVX2, FMA, F16C) run on this CPU.
#[cfg(target_arch = "x86_64")]
fn x86_kernels() -> bool {
    crate::math::numerics::has_avx2_fma_f16c()
}

/// The rows below a block of four columns c of a packed symmetric operator A: given the four
/// columns' entries on those rows (tiled as [`pack_inverse`] lays them out), x_c and the rows' x
/// and y, adds Σ_c A_rc x_c to every y_r and returns the four sums Σ_r A_rc x_r. Unsafe to call only where the kernel's CPU features are
/// missing ([`Stored::rows_kernel`] picks one that runs).
type Rows<T> = unsafe fn(&[T], [f64; 4], &[f64], &mut [f64]) -> [f64; 4];

/// [`Rows`] in portable code.
///
/// # Safety
/// None needed: it is `unsafe` only to share the type of the vector kernels.
unsafe fn rows_portable<T: Stored>(
    tiles: &[T],
    xc: [f64; 4],
    x: &[f64],
    y: &mut [f64],
) -> [f64; 4] {
    let tiled = x.len() / 4 * 4;
    let mut sums = [0.0; 4];
    for (r, (&xr, yr)) in x.iter().zip(y.iter_mut()).enumerate() {
        for c in 0..4 {
            let a = tiles[tile_index(r, c, tiled)].to_f64();
            *yr = a.mul_add(xc[c], *yr);
            sums[c] = a.mul_add(xr, sums[c]);
        }
    }
    sums
}

/// Where row r (counted from the first row below the block) of column c of a block lies among its
/// tiles, when the first `tiled` rows are in 4×4 tiles.
#[inline(always)]
fn tile_index(r: usize, c: usize, tiled: usize) -> usize {
    if r < tiled {
        16 * (r / 4) + 4 * c + r % 4
    } else {
        4 * r + c
    }
}

/// [`Rows`] with AVX2 and FMA, four rows per vector, for one storage type (`$load` widens four
/// stored numbers to f64).
#[cfg(target_arch = "x86_64")]
macro_rules! rows_x86 {
    ($name:ident, $t:ty, $load:path) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        fn $name(tiles: &[$t], xc: [f64; 4], x: &[f64], y: &mut [f64]) -> [f64; 4] {
            use std::arch::x86_64::*;
            let len = x.len();
            assert!(y.len() == len && tiles.len() == 4 * len);
            let xb: [__m256d; 4] = std::array::from_fn(|c| _mm256_set1_pd(xc[c]));
            let mut acc = [_mm256_setzero_pd(); 4];
            let mut r = 0;
            while r + 4 <= len {
                // SAFETY: rows r..r + 4 lie in x and y, their tile in `tiles` (asserted above).
                unsafe {
                    let xr = _mm256_loadu_pd(x.as_ptr().add(r));
                    let mut yr = _mm256_loadu_pd(y.as_ptr().add(r));
                    for c in 0..4 {
                        let a = $load(tiles.as_ptr().add(4 * r + 4 * c));
                        yr = _mm256_fmadd_pd(a, xb[c], yr);
                        acc[c] = _mm256_fmadd_pd(a, xr, acc[c]);
                    }
                    _mm256_storeu_pd(y.as_mut_ptr().add(r), yr);
                }
                r += 4;
            }
            let mut sums: [f64; 4] = std::array::from_fn(|c| {
                let mut lanes = [0.0f64; 4];
                // SAFETY: four f64 are written to a four-f64 array.
                unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc[c]) };
                lanes.iter().sum::<f64>()
            });
            for r in r..len {
                for c in 0..4 {
                    let a = tiles[4 * r + c].to_f64();
                    y[r] = a.mul_add(xc[c], y[r]);
                    sums[c] = a.mul_add(x[r], sums[c]);
                }
            }
            sums
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86_loads {
    use std::arch::x86_64::*;

    /// # Safety
    /// Four numbers must be readable at `p`, and the CPU must have the features.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn f32(p: *const f32) -> __m256d {
        // SAFETY: as the caller guarantees.
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }

    /// # Safety
    /// As [`f32`].
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn f64(p: *const f64) -> __m256d {
        // SAFETY: as the caller guarantees.
        unsafe { _mm256_loadu_pd(p) }
    }
}

#[cfg(target_arch = "x86_64")]
rows_x86!(rows_x86_f32, f32, x86_loads::f32);
#[cfg(target_arch = "x86_64")]
rows_x86!(rows_x86_f64, f64, x86_loads::f64);

impl Stored for f16 {
    fn store(values: &mut [f64], out: &mut [Self]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if x86_kernels() {
            // SAFETY: the CPU has the features the function was compiled for.
            return unsafe { store_f16_x86(values, out) };
        }
        // Relative to the largest entry, so that no unit's operator leaves the format's range
        // whatever α and the probabilities.
        // Eight running maxima, so that the pass is not one chain of dependent comparisons.
        let mut maxima = [0.0f64; 8];
        let chunks = values.chunks_exact(8);
        let tail = chunks
            .remainder()
            .iter()
            .fold(0.0f64, |a, v| a.max(v.abs()));
        for chunk in chunks {
            for (m, v) in maxima.iter_mut().zip(chunk) {
                *m = m.max(v.abs());
            }
        }
        let largest = maxima.iter().fold(tail, |a, &m| a.max(m));
        let scale = if largest.is_finite() && largest > 0.0 {
            largest
        } else {
            1.0
        };
        let inverse = 1.0 / scale;
        values.iter_mut().for_each(|v| *v *= inverse);
        out.convert_from_f64_slice(values);
        scale
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    /// Portable only: where the x86 kernels run, f16 inverses take `symmetric_product_f16_x86`
    /// (f32 arithmetic) and never reach a [`Rows`] kernel.
    fn rows_kernel() -> Rows<Self> {
        rows_portable::<f16>
    }
}

impl Stored for f32 {
    fn store(values: &mut [f64], out: &mut [Self]) -> f64 {
        out.iter_mut()
            .zip(values.iter())
            .for_each(|(o, &v)| *o = v as f32);
        1.0
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn rows_kernel() -> Rows<Self> {
        #[cfg(target_arch = "x86_64")]
        if x86_kernels() {
            return rows_x86_f32;
        }
        rows_portable::<f32>
    }
}

impl Stored for f64 {
    fn store(values: &mut [f64], out: &mut [Self]) -> f64 {
        out.copy_from_slice(values);
        1.0
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    fn rows_kernel() -> Rows<Self> {
        #[cfg(target_arch = "x86_64")]
        if x86_kernels() {
            return rows_x86_f64;
        }
        rows_portable::<f64>
    }
}

/// [`Stored::store`] for f16 with AVX2 and F16C: the largest magnitude in one pass, then the
/// scaled values converted (f64 → f32 → f16, rounding to nearest each time) eight at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_f16_x86(values: &[f64], out: &mut [f16]) -> f64 {
    use std::arch::x86_64::*;
    assert_eq!(values.len(), out.len());
    let split = values.len() / 8 * 8;
    let sign = _mm256_set1_pd(-0.0);
    let mut maxima = [_mm256_setzero_pd(); 2];
    for k in (0..split).step_by(8) {
        for (h, m) in maxima.iter_mut().enumerate() {
            // SAFETY: k + 8 ≤ values.len().
            let v = unsafe { _mm256_loadu_pd(values.as_ptr().add(k + 4 * h)) };
            *m = _mm256_max_pd(*m, _mm256_andnot_pd(sign, v));
        }
    }
    let mut lanes = [0.0f64; 8];
    // SAFETY: eight f64 are written to an eight-f64 array.
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), maxima[0]);
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), maxima[1]);
    }
    let largest = values[split..]
        .iter()
        .chain(&lanes)
        .fold(0.0f64, |a, v| a.max(v.abs()));
    let scale = if largest.is_finite() && largest > 0.0 {
        largest
    } else {
        1.0
    };
    let inverse = _mm256_set1_pd(1.0 / scale);
    for k in (0..split).step_by(8) {
        // SAFETY: k + 8 ≤ values.len() = out.len(); f16 is a transparent u16.
        unsafe {
            let low = _mm256_cvtpd_ps(_mm256_mul_pd(
                _mm256_loadu_pd(values.as_ptr().add(k)),
                inverse,
            ));
            let high = _mm256_cvtpd_ps(_mm256_mul_pd(
                _mm256_loadu_pd(values.as_ptr().add(k + 4)),
                inverse,
            ));
            let halves = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_set_m128(high, low));
            _mm_storeu_si128(out.as_mut_ptr().add(k).cast(), halves);
        }
    }
    for (o, &v) in out[split..].iter_mut().zip(&values[split..]) {
        *o = f16::from_f64(v / scale);
    }
    scale
}

/// Applies every unit's packed operator to its column of the `order` × units buffer `x`, in
/// parallel over units.
pub(super) fn apply_units(packed: &Packed, operator: Operator, order: usize, x: &mut [f64]) {
    fn run<T: Stored>(
        values: &[T],
        scales: &[f64],
        operator: Operator,
        m: usize,
        x: &mut [f64],
        apply: fn(&[T], Operator, &mut [f64], &mut [f64]),
    ) {
        let len = m * (m + 1) / 2;
        // Chunks of units large enough to amortise the per-task overhead.
        let units = (1 << 16) / len.max(1) + 1;
        x.par_chunks_mut(m * units)
            .zip(values.par_chunks(len * units))
            .zip(scales.par_chunks(units))
            .for_each(|((x, values), scales)| {
                let mut scratch = vec![0.0f64; m];
                for ((x, op), &scale) in x
                    .chunks_exact_mut(m)
                    .zip(values.chunks_exact(len))
                    .zip(scales)
                {
                    apply(op, operator, x, &mut scratch);
                    if scale != 1.0 {
                        // Inverse: (s A)x = s (A x); factor: (s L)⁻ᵀ(s L)⁻¹x = L⁻ᵀL⁻¹x / s².
                        let factor = match operator {
                            Operator::Inverse => scale,
                            Operator::Factor => 1.0 / (scale * scale),
                        };
                        x.iter_mut().for_each(|v| *v *= factor);
                    }
                }
            });
    }
    let scales = &packed.scales;
    match &packed.values {
        Values::F16(p) => run(p, scales, operator, order, x, apply_unit_f16),
        Values::F32(p) => run(p, scales, operator, order, x, apply_unit::<f32>),
        Values::F64(p) => run(p, scales, operator, order, x, apply_unit::<f64>),
    }
}

/// Four consecutive stored numbers in f64: the unit of work of the kernels.
#[inline(always)]
fn widen<T: Stored>(a: &[T; 4]) -> [f64; 4] {
    std::array::from_fn(|k| a[k].to_f64())
}

/// x ← L⁻ᵀL⁻¹x (factor) or x ← A⁻¹x (inverse) for one unit, with AVX2+FMA where available.
fn apply_unit<T: Stored>(op: &[T], operator: Operator, x: &mut [f64], scratch: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::math::numerics::has_avx2_fma() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { apply_unit_avx2(op, operator, x, scratch) };
        return;
    }
    apply_unit_generic(op, operator, x, scratch, widen::<T>)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn apply_unit_avx2<T: Stored>(op: &[T], operator: Operator, x: &mut [f64], scratch: &mut [f64]) {
    apply_unit_generic(op, operator, x, scratch, widen::<T>)
}

/// As [`apply_unit`] for half precision, converting with F16C where available.
fn apply_unit_f16(op: &[f16], operator: Operator, x: &mut [f64], scratch: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if x86_kernels() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { apply_unit_f16c(op, operator, x, scratch) };
        return;
    }
    apply_unit_generic(op, operator, x, scratch, widen::<f16>)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn apply_unit_f16c(op: &[f16], operator: Operator, x: &mut [f64], scratch: &mut [f64]) {
    use std::arch::x86_64::{__m256d, _mm_cvtph_ps, _mm_loadl_epi64, _mm256_cvtps_pd};
    if operator == Operator::Inverse {
        symmetric_product_f16_x86(op, x, scratch);
        return;
    }
    let widen = |a: &[f16; 4]| -> [f64; 4] {
        // SAFETY: `a` is 8 readable bytes (f16 is a transparent u16); the features are enabled.
        unsafe {
            let halves = _mm_loadl_epi64(a.as_ptr().cast());
            std::mem::transmute::<__m256d, [f64; 4]>(_mm256_cvtps_pd(_mm_cvtph_ps(halves)))
        }
    };
    apply_unit_generic(op, operator, x, scratch, widen)
}

/// x ← A x for one unit's f16 inverse in the layout of [`pack_inverse`], in f32 arithmetic
/// (eight rows per vector): f16's own rounding (4.9e-4) is three orders above that of f32 sums of
/// at most a few thousand terms, and f32 halves the multiply-adds of f64, which bound this loop
/// once the operator is a quarter of its f64 size.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn symmetric_product_f16_x86(op: &[f16], x: &mut [f64], scratch: &mut [f64]) {
    use std::arch::x86_64::*;
    let m = x.len();
    assert_eq!(scratch.len(), m);
    // SAFETY: the m f64 of `scratch` are 2m f32 (f64's alignment is a multiple of f32's), and
    // nothing else reads them while the reinterpretation lives.
    let halves =
        unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<f32>(), 2 * m) };
    let (xs, ys) = halves.split_at_mut(m);
    xs.iter_mut()
        .zip(x.iter())
        .for_each(|(s, &v)| *s = v as f32);
    ys.fill(0.0);
    let h = |v: f16| -> f32 { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(v.to_bits() as i32))) };
    let (mut j, mut o) = (0, 0);
    while j + 4 <= m {
        let len = m - j - 4;
        let block = &op[o..o + 10 + 4 * len];
        let mut d = 0;
        for column in j..j + 4 {
            ys[column] += h(block[d]) * xs[column];
            d += 1;
            for r in column + 1..j + 4 {
                let a = h(block[d]);
                d += 1;
                ys[r] += a * xs[column];
                ys[column] += a * xs[r];
            }
        }
        let tiles = &block[10..];
        let xc: [f32; 4] = std::array::from_fn(|c| xs[j + c]);
        let xb: [__m256; 4] = std::array::from_fn(|c| _mm256_set1_ps(xc[c]));
        let (x_rows, (y_head, y_rows)) = (&xs[j + 4..], ys.split_at_mut(j + 4));
        let mut acc = [_mm256_setzero_ps(); 4];
        let tiled = len / 4 * 4;
        let mut r = 0;
        while r + 8 <= tiled {
            // SAFETY: rows r..r + 8 lie in x_rows and y_rows, and their two 4×4 tiles (at 4r and
            // 4r + 16) in `tiles` (4·len numbers); f16 is a transparent u16.
            unsafe {
                let xv = _mm256_loadu_ps(x_rows.as_ptr().add(r));
                let mut yv = _mm256_loadu_ps(y_rows.as_ptr().add(r));
                let t = tiles.as_ptr().add(4 * r);
                for c in 0..4 {
                    let low = _mm_loadl_epi64(t.add(4 * c).cast());
                    let high = _mm_loadl_epi64(t.add(16 + 4 * c).cast());
                    let a = _mm256_cvtph_ps(_mm_unpacklo_epi64(low, high));
                    yv = _mm256_fmadd_ps(a, xb[c], yv);
                    acc[c] = _mm256_fmadd_ps(a, xv, acc[c]);
                }
                _mm256_storeu_ps(y_rows.as_mut_ptr().add(r), yv);
            }
            r += 8;
        }
        let mut sums: [f32; 4] = std::array::from_fn(|c| {
            let mut lanes = [0.0f32; 8];
            // SAFETY: eight f32 are written to an eight-f32 array.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[c]) };
            lanes.iter().sum::<f32>()
        });
        for r in r..len {
            for c in 0..4 {
                let a = h(tiles[tile_index(r, c, tiled)]);
                y_rows[r] += a * xc[c];
                sums[c] += a * x_rows[r];
            }
        }
        for c in 0..4 {
            y_head[j + c] += sums[c];
        }
        o += block.len();
        j += 4;
    }
    while j < m {
        let column = &op[o..o + m - j];
        o += m - j;
        let mut sum = h(column[0]) * xs[j];
        for (r, &a) in column[1..].iter().enumerate() {
            let a = h(a);
            ys[j + 1 + r] += a * xs[j];
            sum += a * xs[j + 1 + r];
        }
        ys[j] += sum;
        j += 1;
    }
    x.iter_mut()
        .zip(ys.iter())
        .for_each(|(v, &s)| *v = s as f64);
}

/// The packed lower triangle holds column j (rows j..m) at offset Σ_{k<j}(m − k).
#[inline(always)]
fn apply_unit_generic<T: Stored, W: Fn(&[T; 4]) -> [f64; 4]>(
    op: &[T],
    operator: Operator,
    x: &mut [f64],
    scratch: &mut [f64],
    widen: W,
) {
    let m = x.len();
    match operator {
        Operator::Factor => {
            // L y = x, column by column; then Lᵀ z = y, row by row of Lᵀ (columns of L).
            let mut o = 0;
            for j in 0..m {
                let column = &op[o..o + m - j];
                o += m - j;
                let (head, tail) = x.split_at_mut(j + 1);
                let y = head[j] / column[0].to_f64();
                head[j] = y;
                axpy(&column[1..], -y, tail, &widen);
            }
            for j in (0..m).rev() {
                o -= m - j;
                let column = &op[o..o + m - j];
                let dot = dot(&column[1..], &x[j + 1..], &widen);
                x[j] = (x[j] - dot) / column[0].to_f64();
            }
        }
        Operator::Inverse => {
            symmetric_product(op, x, scratch);
            x.copy_from_slice(scratch);
        }
    }
}

/// y = A x from the lower half of the symmetric A packed in blocks of four columns
/// ([`pack_inverse`]): each pass over the rows below a block reads x_r and y_r once for four
/// columns (y_r += Σ_c A_rc x_c, and y_c += A_rc x_r) and A as one contiguous stream, which keeps
/// the loop bound by the reads of A.
#[inline(always)]
fn symmetric_product<T: Stored>(op: &[T], x: &[f64], y: &mut [f64]) {
    let m = x.len();
    let rows = T::rows_kernel();
    y.fill(0.0);
    let (mut j, mut o) = (0, 0);
    while j + 4 <= m {
        let len = m - j - 4;
        let block = &op[o..o + 10 + 4 * len];
        // The 4×4 block on the diagonal, its lower half column by column.
        let mut d = 0;
        for column in j..j + 4 {
            y[column] += block[d].to_f64() * x[column];
            d += 1;
            for r in column + 1..j + 4 {
                let a = block[d].to_f64();
                d += 1;
                y[r] += a * x[column];
                y[column] += a * x[r];
            }
        }
        // The rows below it.
        let xc: [f64; 4] = std::array::from_fn(|c| x[j + c]);
        // SAFETY: `rows_kernel` gives a kernel whose features the CPU has.
        let sums = unsafe { rows(&block[10..], xc, &x[j + 4..], &mut y[j + 4..]) };
        for c in 0..4 {
            y[j + c] += sums[c];
        }
        o += block.len();
        j += 4;
    }
    // The last m mod 4 columns, one at a time.
    while j < m {
        let column = &op[o..o + m - j];
        o += m - j;
        let xj = x[j];
        let mut sum = column[0].to_f64() * xj;
        for (r, a) in column[1..].iter().enumerate() {
            let a = a.to_f64();
            y[j + 1 + r] += a * xj;
            sum += a * x[j + 1 + r];
        }
        y[j] += sum;
        j += 1;
    }
}

/// Packs the lower half of the m × m `a` column by column (column j, rows j..m, at offset
/// Σ_{k<j}(m − k)): the layout of the Cholesky factors.
pub(super) fn pack_columns<E: Compute>(a: &Mat<E>, out: &mut [f64]) {
    let mut o = 0;
    for j in 0..a.ncols() {
        let column = &a.col_as_slice(j)[j..];
        widen_into(column, &mut out[o..o + column.len()]);
        o += column.len();
    }
}

/// `out` ← `values` in f64.
#[inline(always)]
fn widen_into<E: Compute>(values: &[E], out: &mut [f64]) {
    out.iter_mut().zip(values).for_each(|(o, &v)| *o = v.into());
}

/// Packs the lower half of the m × m symmetric `a` in the layout of [`symmetric_product`]: for
/// each block of four columns j..j + 4, the 10 entries of its diagonal block column by column,
/// then the rows below in 4×4 tiles (four rows of column j, of j + 1, …) and the last rows four
/// entries each (columns j..j + 4 of the row); the last m mod 4 columns follow as plain columns.
/// As many numbers as the column-packed lower half.
pub(super) fn pack_inverse<E: Compute>(a: &Mat<E>, out: &mut [f64]) {
    let m = a.nrows();
    let mut o = 0;
    let mut j = 0;
    while j + 4 <= m {
        let columns: [&[E]; 4] = std::array::from_fn(|c| a.col_as_slice(j + c));
        for (c, column) in columns.iter().enumerate() {
            widen_into(&column[j + c..j + 4], &mut out[o..o + 4 - c]);
            o += 4 - c;
        }
        let start = j + 4;
        let tiled = (m - start) / 4 * 4;
        for t in (start..start + tiled).step_by(4) {
            for column in &columns {
                widen_into(&column[t..t + 4], &mut out[o..o + 4]);
                o += 4;
            }
        }
        for r in start + tiled..m {
            for column in &columns {
                out[o] = column[r].into();
                o += 1;
            }
        }
        j += 4;
    }
    for column in j..m {
        let tail = &a.col_as_slice(column)[column..];
        widen_into(tail, &mut out[o..o + tail.len()]);
        o += tail.len();
    }
}

/// Σ a_k b_k with eight independent accumulators (so the loop vectorises).
#[inline(always)]
fn dot<T: Stored, W: Fn(&[T; 4]) -> [f64; 4]>(a: &[T], b: &[f64], widen: &W) -> f64 {
    let mut acc = [[0.0f64; 4]; 2];
    let split = a.len() / 8 * 8;
    for (a, b) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for h in 0..2 {
            let v = widen(a[4 * h..4 * h + 4].try_into().unwrap());
            for k in 0..4 {
                acc[h][k] = v[k].mul_add(b[4 * h + k], acc[h][k]);
            }
        }
    }
    let tail: f64 = a[split..]
        .iter()
        .zip(&b[split..])
        .map(|(&a, &b)| a.to_f64() * b)
        .sum();
    acc.iter().flatten().sum::<f64>() + tail
}

/// y += s·a.
#[inline(always)]
fn axpy<T: Stored, W: Fn(&[T; 4]) -> [f64; 4]>(a: &[T], s: f64, y: &mut [f64], widen: &W) {
    let split = a.len() / 4 * 4;
    for (a, y) in a[..split]
        .chunks_exact(4)
        .zip(y[..split].chunks_exact_mut(4))
    {
        let v = widen(a.try_into().unwrap());
        for k in 0..4 {
            y[k] = v[k].mul_add(s, y[k]);
        }
    }
    for (a, y) in a[split..].iter().zip(&mut y[split..]) {
        *y += a.to_f64() * s;
    }
}
