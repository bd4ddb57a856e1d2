//! Memory estimates before large allocations: a command that would need more memory than the
//! machine (or the process's address-space limit, `ulimit -v`) allows is refused with the
//! estimate, instead of failing in the allocator (an abort, or a panic) part-way through.
//!
//! Estimates are computed in `u128` with saturating arithmetic, so that an estimate itself
//! never overflows however large the sizes it is given.
//!
//! ```
//! use helmholtz::memory::{bytes_of, check_allocation};
//! // A million by a million f64 matrix: about 7.3 TiB, more than any machine here has.
//! let bytes = bytes_of(&[1_000_000, 1_000_000], 8);
//! assert!(check_allocation("a 10^6 × 10^6 matrix", bytes).is_err());
//! assert!(check_allocation("a small vector", 1024).is_ok());
//! ```

use crate::error::{Error, Result};

/// Bytes in a gibibyte.
const GIB: f64 = (1u64 << 30) as f64;

/// The product of `counts` times `bytes_each`, saturating at `u128::MAX` (never overflows).
pub fn bytes_of(counts: &[usize], bytes_each: u128) -> u128 {
    counts
        .iter()
        .fold(bytes_each, |acc, &n| acc.saturating_mul(n as u128))
}

/// What limits the memory this process can use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryBound {
    /// The machine's available memory (`MemAvailable` in `/proc/meminfo`).
    Machine(u128),
    /// What the process's address-space limit (`ulimit -v`) leaves above its current size.
    AddressSpace(u128),
}

impl MemoryBound {
    /// The bytes of the bound.
    pub fn bytes(self) -> u128 {
        match self {
            MemoryBound::Machine(b) | MemoryBound::AddressSpace(b) => b,
        }
    }
}

/// The tighter of the machine's available memory and the room the process's address-space
/// limit leaves; `None` where neither can be read (systems without `/proc`).
pub fn available() -> Option<MemoryBound> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| kib_field(&text, "MemAvailable:"))
        .map(MemoryBound::Machine);
    let address_space = address_space_limit().map(|limit| {
        let used = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|text| kib_field(&text, "VmSize:"))
            .unwrap_or(0);
        MemoryBound::AddressSpace(limit.saturating_sub(used))
    });
    match (machine, address_space) {
        (Some(m), Some(a)) => Some(if a.bytes() < m.bytes() { a } else { m }),
        (m, a) => m.or(a),
    }
}

/// The soft address-space limit of this process in bytes (`None` when unlimited or unknown).
fn address_space_limit() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    soft.parse::<u128>().ok()
}

/// The value of a `NAME:  123 kB` line, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u128 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A byte count in GiB (or MiB below one GiB) for messages.
pub fn human_bytes(bytes: u128) -> String {
    let gib = bytes as f64 / GIB;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", (bytes as f64 / (1u64 << 20) as f64).ceil())
    }
}

/// Refuses, before anything is allocated, work that needs about `bytes` of memory when that is
/// more than this process can have: "`what` needs about N GiB, this machine has M GiB
/// available". Where the available memory cannot be read, everything is accepted.
pub fn check_allocation(what: &str, bytes: u128) -> Result<()> {
    match available() {
        Some(bound) if bytes > bound.bytes() => Err(too_large(what, bytes, bound)),
        _ => Ok(()),
    }
}

/// The error of [`check_allocation`].
fn too_large(what: &str, bytes: u128, bound: MemoryBound) -> Error {
    let has = match bound {
        MemoryBound::Machine(b) => format!("this machine has {} available", human_bytes(b)),
        MemoryBound::AddressSpace(b) => format!(
            "this process may use {} more (its address-space limit, ulimit -v)",
            human_bytes(b)
        ),
    };
    Error::TooLarge(format!("{what} needs about {}, {has}", human_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_saturate_instead_of_overflowing() {
        assert_eq!(bytes_of(&[3, 4], 8), 96);
        assert_eq!(
            bytes_of(&[usize::MAX, usize::MAX, usize::MAX], 8),
            u128::MAX
        );
        assert!(check_allocation("everything", u128::MAX).is_err() || available().is_none());
    }

    #[test]
    fn the_message_names_what_and_both_sizes() {
        let err = too_large(
            "model.hidden = [100000000]",
            3 << 30,
            MemoryBound::Machine(1 << 30),
        )
        .to_string();
        assert!(
            err.contains("model.hidden = [100000000] needs about 3.0 GiB")
                && err.contains("this machine has 1.0 GiB available"),
            "{err}"
        );
        let err = too_large("x", 5 << 20, MemoryBound::AddressSpace(2 << 20)).to_string();
        assert!(err.contains("5 MiB") && err.contains("ulimit -v"), "{err}");
    }

    #[test]
    fn proc_fields_are_read_in_bytes() {
        let text = "MemTotal:       24684096 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(kib_field(text, "MemAvailable:"), Some(2048 * 1024));
        assert_eq!(kib_field(text, "VmSize:"), None);
    }
}
