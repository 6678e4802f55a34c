//! What a patch in code is: a debugger's breakpoint or an instrumentation hook. The code check
//! finds bytes in memory that differ from the file; this module names them from the patched
//! bytes. Compiler padding (`int3` between x86-64 functions) is the same in memory and in the
//! file, so it never reaches this point.

/// Instruction sets the classifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this SDK was built for, when the classifier knows it.
    pub const fn current() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

/// What patched bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// A software breakpoint (`int3`, `brk`): a debugger stops here.
    Breakpoint,
    /// A jump away from the function: an inline hook (Frida's Interceptor, Substrate, Dobby).
    InlineHook(&'static str),
    /// Something else changed.
    Modified,
}

impl Patch {
    pub fn describe(self) -> &'static str {
        match self {
            Patch::Breakpoint => "software breakpoint",
            Patch::InlineHook(how) => how,
            Patch::Modified => "modified code",
        }
    }
}

/// Classifies the bytes now in memory at the start of a patch (the first changed instruction;
/// on AArch64, 4-byte aligned).
pub fn classify(arch: Arch, patched: &[u8]) -> Patch {
    match arch {
        Arch::X86_64 => classify_x86_64(patched),
        Arch::Aarch64 => classify_aarch64(patched),
    }
}

fn classify_x86_64(code: &[u8]) -> Patch {
    match code {
        [0xCC, ..] | [0xCD, 0x03, ..] | [0xF1, ..] => Patch::Breakpoint,
        [0xE9, _, _, _, _, ..] => Patch::InlineHook("jmp rel32 (inline hook)"),
        [0xEB, _, ..] => Patch::InlineHook("jmp rel8 (inline hook)"),
        [0xFF, 0x25, ..] => Patch::InlineHook("jmp [rip+disp32] (inline hook)"),
        // movabs r64, imm64 then jmp r64 (REX.W B8+r, then FF E0+r, with REX.B for r8–r15).
        [0x48 | 0x49, 0xB8..=0xBF, rest @ ..] if rest.len() >= 10 => match &rest[8..] {
            [0xFF, 0xE0..=0xE7, ..] | [0x41, 0xFF, ..] => {
                Patch::InlineHook("movabs + jmp register (inline hook)")
            }
            _ => Patch::Modified,
        },
        // push imm32; ret
        [0x68, _, _, _, _, 0xC3, ..] => Patch::InlineHook("push + ret (inline hook)"),
        _ => Patch::Modified,
    }
}

fn words(code: &[u8]) -> impl Iterator<Item = u32> + '_ {
    code.chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

fn classify_aarch64(code: &[u8]) -> Patch {
    let instructions: Vec<u32> = words(code).take(4).collect();
    let Some(&first) = instructions.first() else {
        return Patch::Modified;
    };
    let is_brk = |word: u32| word & 0xFFE0_001F == 0xD420_0000;
    let is_br = |word: u32| word & 0xFFFF_FC1F == 0xD61F_0000;
    let is_b = |word: u32| word & 0xFC00_0000 == 0x1400_0000;
    // LDR Xt, literal (the target address stored right after the jump).
    let is_ldr_literal = |word: u32| word & 0xFF00_0000 == 0x5800_0000;
    let is_adrp = |word: u32| word & 0x9F00_0000 == 0x9000_0000;
    if is_brk(first) {
        Patch::Breakpoint
    } else if is_b(first) {
        Patch::InlineHook("b imm26 (inline hook)")
    } else if (is_ldr_literal(first) || is_adrp(first))
        && instructions.iter().skip(1).take(2).any(|&word| is_br(word))
    {
        Patch::InlineHook("load address + br (inline hook)")
    } else if is_br(first) {
        Patch::InlineHook("br register (inline hook)")
    } else {
        Patch::Modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn x86_64_patches_seen_in_practice() {
        // `abort` after a bare Frida attach (recorded on this project's CI machine).
        let frida = [
            0xE9, 0x64, 0x4C, 0xD1, 0xFE, 0x0F, 0x1F, 0x40, 0x00, 0x48, 0x81, 0xEC,
        ];
        assert_eq!(
            classify(Arch::X86_64, &frida),
            Patch::InlineHook("jmp rel32 (inline hook)")
        );
        // gdb's breakpoint over `push rbp`.
        assert_eq!(
            classify(Arch::X86_64, &[0xCC, 0x89, 0xE5]),
            Patch::Breakpoint
        );
        assert_eq!(
            classify(
                Arch::X86_64,
                &[0xFF, 0x25, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
            ),
            Patch::InlineHook("jmp [rip+disp32] (inline hook)")
        );
        let movabs_r11 = [0x49, 0xBB, 1, 2, 3, 4, 5, 6, 7, 8, 0x41, 0xFF, 0xE3];
        assert_eq!(
            classify(Arch::X86_64, &movabs_r11),
            Patch::InlineHook("movabs + jmp register (inline hook)")
        );
        assert_eq!(
            classify(Arch::X86_64, &[0x68, 1, 2, 3, 4, 0xC3]),
            Patch::InlineHook("push + ret (inline hook)")
        );
        // A changed immediate is neither.
        assert_eq!(classify(Arch::X86_64, &[0xB8, 1, 0, 0, 0]), Patch::Modified);
        assert_eq!(classify(Arch::X86_64, &[]), Patch::Modified);
        assert_eq!(classify(Arch::X86_64, &[0x48, 0xB8, 1]), Patch::Modified);
    }

    #[test]
    fn aarch64_patches_frida_substrate_and_debuggers_write() {
        // Frida's arm64 trampoline: ldr x16, #8; br x16; .quad target.
        assert_eq!(
            classify(
                Arch::Aarch64,
                &le(&[0x5800_0050, 0xD61F_0200, 0x1234_5678, 0x0000_007F])
            ),
            Patch::InlineHook("load address + br (inline hook)")
        );
        // adrp x17, page; add x17, x17, #off; br x17.
        assert_eq!(
            classify(Arch::Aarch64, &le(&[0x9000_0011, 0x9100_0231, 0xD61F_0220])),
            Patch::InlineHook("load address + br (inline hook)")
        );
        // b target (in range).
        assert_eq!(
            classify(Arch::Aarch64, &le(&[0x1400_1234])),
            Patch::InlineHook("b imm26 (inline hook)")
        );
        // gdb (brk #0) and lldb (brk #0xf000) breakpoints.
        assert_eq!(
            classify(Arch::Aarch64, &le(&[0xD420_0000])),
            Patch::Breakpoint
        );
        assert_eq!(
            classify(Arch::Aarch64, &le(&[0xD43E_0000])),
            Patch::Breakpoint
        );
        // An ordinary prologue (stp x29, x30, [sp, #-16]!; mov x29, sp) is not a hook.
        assert_eq!(
            classify(Arch::Aarch64, &le(&[0xA9BF_7BFD, 0x9100_03FD])),
            Patch::Modified
        );
        assert_eq!(classify(Arch::Aarch64, &[0xD4, 0x20]), Patch::Modified);
    }
}
