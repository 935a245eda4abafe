//! Process memory figures for `server.memory_*` and `/memory` (glibc malloc
//! statistics and RSS),
//! and giving memory freed after start-up back to the system.
//!
//! Start-up also touches most of the program's own code and read-only data
//! (parsing and validating the bootstrap runs through the Envoy schema's
//! generated code, and the kernel maps up to 64 KiB around each page faulted in):
//! about 10 MiB of the binary stay mapped, and counted in RSS, for code that
//! does not run again. Once the server is live those mappings are dropped
//! (`release_startup_code`); the pages stay in the page cache, and what runs
//! later (the request path, a config update) maps its own pages back in with a
//! minor fault each.

/// Bytes, as Envoy's `server.memory_allocated`, `memory_heap_size`, `memory_physical_size`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryUsage {
    pub allocated: u64,
    pub heap_size: u64,
    pub physical: u64,
    /// Free bytes the allocator holds in its heaps (`/memory`'s `pageheap_free`).
    pub heap_free: u64,
}

pub fn usage() -> MemoryUsage {
    let mut m = MemoryUsage { physical: rss_bytes().unwrap_or(0), ..Default::default() };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        m.allocated = (info.uordblks + info.hblkhd) as u64;
        m.heap_size = (info.arena + info.hblkhd) as u64;
        m.heap_free = info.fordblks as u64;
    }
    m
}

/// Resident set size from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// Returns the allocator's free pages to the system. glibc keeps freed memory in
/// its heaps for reuse and gives back only what lies above the last allocation;
/// after start-up (config text, JSON trees, the schema: megabytes, freed at once)
/// most of it is below, so it would stay resident for good.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps the pages of the program's own code and read-only data, which
/// start-up left mapped (see the module's paragraph). Only segments the program
/// never writes are touched (not the relocated read-only data, which is
/// written at load): dropping their pages loses nothing, the next access maps
/// the file's page again.
pub fn release_startup_code() {
    #[cfg(target_os = "linux")]
    // SAFETY: the callback reads only what dl_iterate_phdr hands it.
    unsafe {
        libc::dl_iterate_phdr(Some(unmap_read_only_segments), std::ptr::null_mut());
    }
}

/// `dl_iterate_phdr`'s callback: the first object is the program itself; its
/// loaded segments without write permission are unmapped, from the first to
/// the last page wholly inside each. Returns 1: no other object is visited.
#[cfg(target_os = "linux")]
unsafe extern "C" fn unmap_read_only_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    _data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info whose `dlpi_phdr` points at
    // `dlpi_phnum` program headers.
    let info = unsafe { &*info };
    if info.dlpi_phdr.is_null() {
        return 1;
    }
    // SAFETY: as above.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0) {
        let start = (info.dlpi_addr as usize + h.p_vaddr as usize).next_multiple_of(page);
        let end = (info.dlpi_addr as usize + (h.p_vaddr + h.p_memsz) as usize) / page * page;
        if end > start {
            // SAFETY: a range of the program's read-only file mapping: MADV_DONTNEED
            // drops its page table entries, and the next access maps the same file
            // page again (nothing was written to it).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
    1
}
