//! The binary: parse arguments, run the command, map the outcome to an exit code.

/// mimalloc instead of the system allocator: a pass allocates and frees millions of small
/// objects (entries, accounts, JSON values), where glibc's malloc spends much of its time
/// consolidating free lists (measured in docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3;
/// libmimalloc-sys names no constant for it; the test below checks it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // One-shot commands exit right after their peak: handing freed memory back to the OS page
    // run by page run (mimalloc's purge, which it also forces at exit) costs ~50 ms at 100k
    // accounts for nothing. `watch` keeps the default so that an idle daemon gives memory back.
    if !std::env::args_os().skip(1).any(|a| a == "watch") {
        keep_freed_memory();
    }
    no_transparent_huge_pages();
    carbonite_sync::cli::main()
}

/// Transparent huge pages off for this process. mimalloc asks for them on its regions; on the
/// development VM, faulting in 2 MiB pages made a 100k-user plan's render phase bimodal
/// (80 ms or 250 ms) and the median plan ~10% slower than with 4 KiB pages
/// (docs/decisions.md, Performance). A failure leaves the default.
#[allow(unsafe_code)]
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads options atomically at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_index() {
        // SAFETY: reads one integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        // mimalloc v3's default purge delay is 1000 ms; no other option defaults to it.
        assert_eq!(get(), 1000);
        super::keep_freed_memory();
        assert_eq!(get(), -1);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn huge_pages_are_turned_off() {
        super::no_transparent_huge_pages();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
            "{status}"
        );
    }
}
