//! tessera's global allocator: [mimalloc], with the two settings that keep
//! an idle server's resident set small.
//!
//! mimalloc spends less CPU per request than glibc's `malloc` on every route
//! that allocates (13-16 % on `/auth/verify`, `/users/me` and `/users` in
//! BENCHMARKS.md). With its defaults it also keeps more memory resident: it
//! lets the kernel back its arenas with transparent huge pages, and holds
//! freed pages for a second before returning them, which a thread that goes
//! idle never does. [`configure`] turns both off; it is the only place in
//! tessera that needs `unsafe` (two foreign calls), hence its own crate.
//!
//! The binary installs the allocator (`#[global_allocator]`) and calls
//! [`configure`] first thing in `main`; libraries and tests linking tessera
//! keep the system allocator.

pub use mimalloc::MiMalloc;

use libmimalloc_sys::mi_option_t;

// The two options' numbers in mimalloc v3's `mi_option_e` (`mimalloc.h`),
// which `libmimalloc-sys` leaves unnamed. The enum's length pins the version
// they were read from: a mimalloc that adds or moves options fails to build
// here rather than setting the wrong one.
const PURGE_DELAY: mi_option_t = 15;
const ALLOW_THP: mi_option_t = 43;
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47);

/// Sets mimalloc up for a small resident set. Call it once, first thing in
/// `main`: memory allocated before it keeps its pages.
///
/// - Transparent huge pages off for this process (`PR_SET_THP_DISABLE`, what
///   mimalloc does itself under `MIMALLOC_ALLOW_THP=0`), and mimalloc told
///   not to ask for them: a 2 MiB page is resident as a whole the moment one
///   byte of it is touched.
/// - Freed pages returned to the kernel at once (`purge_delay` 0, as
///   `MIMALLOC_PURGE_DELAY=0`) instead of a second later.
///
/// An environment variable (`MIMALLOC_ALLOW_THP`, `MIMALLOC_PURGE_DELAY`)
/// still wins: mimalloc reads those at start-up, and they are left alone.
pub fn configure() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes integers
        // only, touches no memory of ours, and at worst fails (an old
        // kernel), which leaves huge pages on.
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
        }
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option
        // table; any value of an existing option is valid.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn option(option: mi_option_t) -> std::os::raw::c_long {
        // SAFETY: reads an integer from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    /// The numbers name the options meant: their defaults (a purge delay of
    /// 1000 ms, huge pages allowed) before, zero after.
    #[test]
    fn configure_turns_off_huge_pages_and_the_purge_delay() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some()
            || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
        {
            return;
        }
        assert_eq!(option(PURGE_DELAY), 1000);
        assert_eq!(option(ALLOW_THP), 1);
        configure();
        assert_eq!(option(PURGE_DELAY), 0);
        assert_eq!(option(ALLOW_THP), 0);
    }
}
