//! The dynamic linker's own list of what it loaded into this process, read from memory: the
//! objects of each link namespace in load order. It tells what `LD_PRELOAD` and `LD_AUDIT` did
//! whatever the environment says now (an injected library can rewrite the environment block).
//!
//! 1. The auxiliary vector (`/proc/self/auxv`) gives `AT_PHDR` and `AT_PHNUM`: where the
//!    executable's program headers are in memory.
//! 2. `PT_PHDR` gives the executable's load bias, `PT_DYNAMIC` its dynamic section.
//! 3. The dynamic section's `DT_DEBUG` entry holds the address of the dynamic linker's
//!    `r_debug` (glibc and bionic both fill it, for debuggers); its `r_map` lists the base
//!    namespace's objects in load order: the executable, the vDSO, the preloaded objects, then
//!    the executable's dependencies.
//! 4. From `r_version` 2 (glibc 2.35 on), `r_next` chains one `r_debug` per further namespace:
//!    audit libraries and objects opened with `dlmopen` live there.
//!
//! Everything is read through [`Memory`], which fails on unmapped addresses (the SDK passes
//! `/proc/self/mem`), and every walk is bounded, so a corrupted or hostile list ends the walk
//! with an error, never the process. 64-bit layouts only.

/// Reads this process's memory; `false` where an address is not mapped.
pub trait Memory {
    fn read(&self, address: u64, buffer: &mut [u8]) -> bool;
}

/// Why the link maps could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMapError {
    NoProgramHeaders,
    NoDynamicSection,
    NoDebugEntry,
    Unreadable,
    TooLong,
}

impl LinkMapError {
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkMapError::NoProgramHeaders => "the auxiliary vector names no program headers",
            LinkMapError::NoDynamicSection => "the executable has no dynamic section",
            LinkMapError::NoDebugEntry => "the executable's dynamic section has no r_debug",
            LinkMapError::Unreadable => "a link map entry points at unmapped memory",
            LinkMapError::TooLong => "a link map is longer than any process loads",
        }
    }
}

const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
const PHDR_SIZE: u64 = 56;
const MAX_PHDRS: u64 = 256;
const MAX_DYN_ENTRIES: u64 = 1024;
/// Objects per namespace, namespaces, and bytes of a name.
const MAX_OBJECTS: usize = 4096;
const MAX_NAMESPACES: usize = 64;
const MAX_NAME: usize = 4096;
/// Bytes of names read in one walk, all namespaces together.
const MAX_NAMES_TOTAL: usize = 1024 * 1024;

/// `AT_PHDR` and `AT_PHNUM` of a 64-bit auxiliary vector.
pub fn program_headers(auxv: &[u8]) -> Option<(u64, u64)> {
    let (mut phdr, mut phnum) = (None, None);
    for pair in auxv.chunks_exact(16) {
        let (key, value) = (u64_at(pair, 0)?, u64_at(pair, 8)?);
        match key {
            0 => break,
            AT_PHDR => phdr = Some(value),
            AT_PHNUM => phnum = Some(value),
            _ => {}
        }
    }
    Some((phdr?, phnum?))
}

/// The objects of every link namespace, base namespace first, each in load order, by the name
/// the dynamic linker gave it (a path; the executable's is usually empty).
pub fn namespaces(
    memory: &dyn Memory,
    phdr: u64,
    phnum: u64,
) -> Result<Vec<Vec<String>>, LinkMapError> {
    // Step 2.
    if phnum == 0 || phnum > MAX_PHDRS {
        return Err(LinkMapError::NoProgramHeaders);
    }
    let mut headers = vec![0u8; (phnum * PHDR_SIZE) as usize];
    if !memory.read(phdr, &mut headers) {
        return Err(LinkMapError::NoProgramHeaders);
    }
    let (mut bias, mut dynamic) = (None, None);
    for header in headers.chunks_exact(PHDR_SIZE as usize) {
        let kind = u32::from_le_bytes(header[..4].try_into().unwrap_or_default());
        let vaddr = u64_at(header, 16).ok_or(LinkMapError::NoProgramHeaders)?;
        match kind {
            PT_PHDR => bias = Some(phdr.wrapping_sub(vaddr)),
            PT_DYNAMIC => dynamic = Some(vaddr),
            _ => {}
        }
    }
    // Without PT_PHDR the load bias is unknown (the headers may even be the dynamic linker's,
    // when it was run as a command): nothing is read.
    let bias = bias.ok_or(LinkMapError::NoProgramHeaders)?;
    let dynamic = dynamic
        .ok_or(LinkMapError::NoDynamicSection)?
        .wrapping_add(bias);
    // Step 3.
    let mut r_debug = None;
    for index in 0..MAX_DYN_ENTRIES {
        let mut entry = [0u8; 16];
        if !memory.read(dynamic.wrapping_add(index * 16), &mut entry) {
            return Err(LinkMapError::Unreadable);
        }
        match u64_at(&entry, 0) {
            Some(DT_NULL) => break,
            Some(DT_DEBUG) => r_debug = u64_at(&entry, 8).filter(|&address| address != 0),
            _ => {}
        }
    }
    let mut r_debug = r_debug.ok_or(LinkMapError::NoDebugEntry)?;
    // Step 4.
    let mut found = Vec::new();
    let mut budget = MAX_NAMES_TOTAL;
    loop {
        let mut header = [0u8; 48];
        if !memory.read(r_debug, &mut header[..40]) {
            return Err(LinkMapError::Unreadable);
        }
        let version = u32::from_le_bytes(header[..4].try_into().unwrap_or_default());
        let first = u64_at(&header, 8).ok_or(LinkMapError::Unreadable)?;
        found.push(objects(memory, first, &mut budget)?);
        let next = if version >= 2 && memory.read(r_debug.wrapping_add(40), &mut header[40..]) {
            u64_at(&header, 40).unwrap_or(0)
        } else {
            0
        };
        if next == 0 {
            return Ok(found);
        }
        if found.len() >= MAX_NAMESPACES {
            return Err(LinkMapError::TooLong);
        }
        r_debug = next;
    }
}

/// One namespace's `link_map` list from `first`: `l_name` at 8, `l_next` at 24.
fn objects(
    memory: &dyn Memory,
    first: u64,
    budget: &mut usize,
) -> Result<Vec<String>, LinkMapError> {
    let mut names = Vec::new();
    let mut entry = first;
    while entry != 0 {
        if names.len() >= MAX_OBJECTS {
            return Err(LinkMapError::TooLong);
        }
        let mut fields = [0u8; 32];
        if !memory.read(entry, &mut fields) {
            return Err(LinkMapError::Unreadable);
        }
        let name = u64_at(&fields, 8).ok_or(LinkMapError::Unreadable)?;
        let name = if name == 0 {
            String::new()
        } else {
            c_string(memory, name)?
        };
        *budget = budget
            .checked_sub(name.len())
            .ok_or(LinkMapError::TooLong)?;
        names.push(name);
        entry = u64_at(&fields, 24).ok_or(LinkMapError::Unreadable)?;
    }
    Ok(names)
}

/// A NUL-terminated name, read a page at most at a time so no read crosses into a page that
/// may not be mapped.
fn c_string(memory: &dyn Memory, address: u64) -> Result<String, LinkMapError> {
    const PAGE: u64 = 4096;
    let mut bytes = Vec::new();
    let mut at = address;
    while bytes.len() < MAX_NAME {
        let to_page_end = PAGE - at % PAGE;
        let mut chunk = vec![0u8; to_page_end.min(256) as usize];
        if !memory.read(at, &mut chunk) {
            return Err(LinkMapError::Unreadable);
        }
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.extend_from_slice(&chunk);
        at = at
            .checked_add(chunk.len() as u64)
            .ok_or(LinkMapError::Unreadable)?;
    }
    Err(LinkMapError::TooLong)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The objects of the base namespace loaded before the executable's first dependency:
/// preloaded (`LD_PRELOAD`, `/etc/ld.so.preload`, relative paths included). Names without a
/// `/` (the executable's empty one, the vDSO's) are not objects from files, and the dynamic
/// linker (`is_linker`, by path), which bionic lists right after the executable, is neither.
/// `None` when no dependency is listed at all: then the load order tells nothing.
pub fn preloaded<'n>(
    base: &'n [String],
    dependencies: &[String],
    is_linker: &dyn Fn(&str) -> bool,
) -> Option<Vec<&'n str>> {
    let mut found = Vec::new();
    for name in base
        .iter()
        .skip(1)
        .filter(|name| name.contains('/') && !is_linker(name))
    {
        let file = name.rsplit('/').next().unwrap_or(name);
        if dependencies.iter().any(|dependency| dependency == file) {
            return Some(found);
        }
        found.push(name.as_str());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake address space of 4 KiB pages: reads succeed only where every page touched was
    /// written.
    #[derive(Default)]
    struct Fake(BTreeMap<u64, Vec<u8>>);

    impl Fake {
        fn put(&mut self, address: u64, bytes: &[u8]) {
            for (index, byte) in bytes.iter().enumerate() {
                let at = address + index as u64;
                self.0.entry(at / 4096).or_insert_with(|| vec![0; 4096])[(at % 4096) as usize] =
                    *byte;
            }
        }
        fn put_u64s(&mut self, address: u64, values: &[u64]) {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.put(address, &bytes);
        }
    }

    impl Memory for Fake {
        fn read(&self, address: u64, buffer: &mut [u8]) -> bool {
            for (index, byte) in buffer.iter_mut().enumerate() {
                let at = address + index as u64;
                match self.0.get(&(at / 4096)) {
                    Some(page) => *byte = page[(at % 4096) as usize],
                    None => return false,
                }
            }
            true
        }
    }

    /// A PIE at 0x5000_0000 whose program headers are at +0x40, with `objects` in the base
    /// namespace and `audit` in a second one.
    fn process(objects: &[&str], audit: &[&str]) -> (Fake, u64) {
        let mut memory = Fake::default();
        let base = 0x5000_0000u64;
        let phdr = base + 0x40;
        let mut headers = vec![0u8; 2 * 56];
        headers[..4].copy_from_slice(&PT_PHDR.to_le_bytes());
        headers[16..24].copy_from_slice(&0x40u64.to_le_bytes());
        headers[56..60].copy_from_slice(&PT_DYNAMIC.to_le_bytes());
        headers[56 + 16..56 + 24].copy_from_slice(&0x3000u64.to_le_bytes());
        memory.put(phdr, &headers);
        let r_debug = 0x7000_0000u64;
        memory.put_u64s(base + 0x3000, &[1, 2, DT_DEBUG, r_debug, DT_NULL, 0]);
        let list = |at: u64, names: &[&str], memory: &mut Fake| {
            for (index, name) in names.iter().enumerate() {
                let entry = at + index as u64 * 0x100;
                let text = at + 0x80 + index as u64 * 0x100;
                let next = if index + 1 < names.len() {
                    entry + 0x100
                } else {
                    0
                };
                memory.put_u64s(entry, &[0, text, 0, next]);
                memory.put(text, format!("{name}\0").as_bytes());
            }
        };
        list(0x7100_0000, objects, &mut memory);
        let second = if audit.is_empty() { 0 } else { 0x7200_0000 };
        memory.put_u64s(r_debug, &[2, 0x7100_0000, 0, 0, 0, second]);
        if !audit.is_empty() {
            memory.put_u64s(second, &[2, 0x7300_0000, 0, 0, 0, 0]);
            list(0x7300_0000, audit, &mut memory);
        }
        (memory, phdr)
    }

    #[test]
    fn the_link_maps_name_what_was_preloaded_and_audited() {
        let (memory, phdr) = process(
            &[
                "",
                "linux-vdso.so.1",
                "/opt/plugins/libplugin.so",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ],
            &[
                "/opt/plugins/libaudit.so",
                "/lib/x86_64-linux-gnu/libc.so.6",
            ],
        );
        let found = namespaces(&memory, phdr, 2).unwrap();
        assert_eq!(found.len(), 2);
        let dependencies = [
            "libgcc_s.so.1".to_string(),
            "libc.so.6".to_string(),
            "linker64".to_string(),
        ];
        let linker = |name: &str| name.ends_with("/linker64");
        assert_eq!(
            preloaded(&found[0], &dependencies, &linker),
            Some(vec!["/opt/plugins/libplugin.so"])
        );
        assert_eq!(found[1][0], "/opt/plugins/libaudit.so");
        // Nothing preloaded: the first object after the vDSO is a dependency.
        let (memory, phdr) = process(&["", "linux-vdso.so.1", "/lib/libc.so.6"], &[]);
        let found = namespaces(&memory, phdr, 2).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(preloaded(&found[0], &dependencies, &linker), Some(vec![]));
        // No dependency listed at all: the order tells nothing.
        assert_eq!(preloaded(&found[0], &["libz.so.1".into()], &linker), None);
        // Bionic lists the linker right after the executable; preloads still follow it.
        let (memory, phdr) = process(
            &[
                "/system/bin/app_process64",
                "/system/bin/linker64",
                "[vdso]",
                "/data/local/tmp/libhook.so",
                "./libpreloaded-relative.so",
                "/system/lib64/libc.so",
            ],
            &[],
        );
        let found = namespaces(&memory, phdr, 2).unwrap();
        let dependencies = ["libc.so".to_string(), "linker64".to_string()];
        assert_eq!(
            preloaded(&found[0], &dependencies, &linker),
            Some(vec![
                "/data/local/tmp/libhook.so",
                "./libpreloaded-relative.so"
            ])
        );
    }

    #[test]
    fn broken_lists_end_the_walk_with_an_error() {
        let (mut memory, phdr) = process(&["", "/lib/libc.so.6"], &[]);
        // An entry pointing at itself.
        memory.put_u64s(0x7100_0100, &[0, 0x7100_0180, 0, 0x7100_0100]);
        assert_eq!(
            namespaces(&memory, phdr, 2).unwrap_err(),
            LinkMapError::TooLong
        );
        // A name in unmapped memory.
        memory.put_u64s(0x7100_0100, &[0, 0x6666_0000, 0, 0]);
        assert_eq!(
            namespaces(&memory, phdr, 2).unwrap_err(),
            LinkMapError::Unreadable
        );
        // No program headers, too many, none readable.
        assert_eq!(
            namespaces(&memory, phdr, 0).unwrap_err(),
            LinkMapError::NoProgramHeaders
        );
        assert_eq!(
            namespaces(&memory, phdr, 100_000).unwrap_err(),
            LinkMapError::NoProgramHeaders
        );
        assert_eq!(
            namespaces(&memory, 0x10, 2).unwrap_err(),
            LinkMapError::NoProgramHeaders
        );
        // The auxiliary vector: pairs until AT_NULL.
        let auxv: Vec<u8> = [AT_PHNUM, 13, AT_PHDR, 0x40, 0, 0, AT_PHDR, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(program_headers(&auxv), Some((0x40, 13)));
        assert_eq!(program_headers(&auxv[..16]), None);
    }

    /// This very process: the base namespace starts with the executable, and nothing is
    /// preloaded into a test run.
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn this_process_has_readable_link_maps() {
        struct Own(std::fs::File);
        impl Memory for Own {
            fn read(&self, address: u64, buffer: &mut [u8]) -> bool {
                super::super::sys::pread_exact_raw(&self.0, buffer, address).is_ok()
            }
        }
        let auxv = std::fs::read("/proc/self/auxv").unwrap();
        let (phdr, phnum) = program_headers(&auxv).unwrap();
        let memory = Own(std::fs::File::open("/proc/self/mem").unwrap());
        let found = namespaces(&memory, phdr, phnum).unwrap();
        assert!(found[0].len() > 2, "{found:?}");
        assert!(
            found[0].iter().any(|name| name.contains("libc.so")),
            "{found:?}"
        );
    }
}
