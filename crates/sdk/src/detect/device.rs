//! Rooted, jailbroken and emulated phones, read through a file-system root so the rules run
//! against fake trees in tests.
//!
//! Android rules apply when the SDK runs on Android or the root looks like an Android tree
//! (it has `system/build.prop`). Emulator rules are phone rules: a Linux host in a virtual
//! machine is not an emulator and is never judged by them. iOS rules apply on iOS.
//!
//! False-positive risks: custom ROMs built with test-keys or `ro.debuggable=1` that are not
//! rooted; developers' phones with an unlocked engineering build; Android's own emulator used
//! by a tester. Policy decides whether `root` or `emulator` rejects or only degrades.

use std::path::Path;

use medgate_proto::wire::SignalKind;

use super::props::Props;
use super::{Confidence, DetectConfig, Detection, Report};

/// su binaries and their daemons.
pub const ANDROID_SU_PATHS: &[&str] = &[
    "system/bin/su",
    "system/xbin/su",
    "sbin/su",
    "su/bin/su",
    "system/sd/xbin/su",
    "system/bin/failsafe/su",
    "data/local/su",
    "data/local/bin/su",
    "data/local/xbin/su",
    "cache/su",
    "dev/su",
    "system/xbin/daemonsu",
    "system/app/Superuser.apk",
    "system/app/SuperSU.apk",
];

/// Magisk, KernelSU and APatch.
pub const ANDROID_ROOT_MANAGER_PATHS: &[&str] = &[
    "sbin/.magisk",
    "sbin/magisk",
    "system/bin/magisk",
    "debug_ramdisk/magisk",
    "debug_ramdisk/.magisk",
    "data/adb/magisk",
    "data/adb/magisk.db",
    "data/adb/modules",
    "cache/.disable_magisk",
    "dev/.magisk.unblock",
    "data/adb/ksu",
    "data/adb/ksud",
    "data/adb/ap",
];

/// Device nodes and files only emulators have.
pub const ANDROID_EMULATOR_PATHS: &[&str] = &[
    "dev/qemu_pipe",
    "dev/goldfish_pipe",
    "dev/socket/qemud",
    "dev/socket/genyd",
    "system/bin/qemu-props",
    "system/lib/libc_malloc_debug_qemu.so",
    "system/lib64/libc_malloc_debug_qemu.so",
    "sys/qemu_trace",
    "system/bin/nox-prop",
    "system/bin/microvirtd",
];

/// Property files read, in the order Android's init loads them.
pub const ANDROID_PROP_FILES: &[&str] = &[
    "prop.default",
    "default.prop",
    "system/etc/prop.default",
    "system/build.prop",
    "system_ext/etc/build.prop",
    "vendor/build.prop",
    "vendor/default.prop",
    "product/etc/build.prop",
    "odm/etc/build.prop",
];

/// Jailbreak tools, package managers and the rootless jailbreak prefix.
pub const IOS_JAILBREAK_PATHS: &[&str] = &[
    "Applications/Cydia.app",
    "Applications/Sileo.app",
    "Applications/Zebra.app",
    "Library/MobileSubstrate/MobileSubstrate.dylib",
    "usr/lib/TweakInject",
    "usr/libexec/cydia",
    "usr/sbin/sshd",
    "usr/bin/ssh",
    "bin/bash",
    "etc/apt",
    "private/var/lib/apt",
    "private/var/lib/cydia",
    "var/jb",
    "private/var/jb",
    "var/binpack",
    ".installed_unc0ver",
    ".bootstrapped_electra",
];

/// The most bytes read of one property file.
const MAX_PROP_FILE: u64 = 1024 * 1024;

/// Whether `root` holds an Android system.
pub fn is_android(root: &Path) -> bool {
    cfg!(target_os = "android") || root.join("system/build.prop").is_file()
}

pub(crate) fn run(config: &DetectConfig, report: &mut Report) {
    let root = &config.fs_root;
    if is_android(root) {
        let props = android_props(root, config.run_getprop, report);
        report.push(android_root(root, &props));
        report.push(android_emulator(root, &props));
    }
    if cfg!(target_os = "ios") {
        report.push(ios_jailbreak(root));
        #[cfg(target_os = "ios")]
        report.push(ios_sandbox_escape(root));
        if let Some(value) = std::env::var_os("DYLD_INSERT_LIBRARIES") {
            report.push([Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!("DYLD_INSERT_LIBRARIES={}", value.to_string_lossy()),
                Confidence::High,
            )]);
        }
    }
}

fn exists(root: &Path, relative: &str) -> bool {
    // `symlink_metadata`: a dangling link planted at a su path still counts.
    root.join(relative).symlink_metadata().is_ok()
}

fn read_bounded(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_PROP_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Android properties from the tree's property files and, when asked and present, `getprop`.
pub fn android_props(root: &Path, run_getprop: bool, report: &mut Report) -> Props {
    let mut props = Props::default();
    if run_getprop {
        let getprop = root.join("system/bin/getprop");
        if getprop.is_file() {
            match std::process::Command::new(&getprop)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
            {
                Ok(output) => {
                    let text = String::from_utf8_lossy(&output.stdout);
                    props.add_getprop(&text);
                }
                Err(error) => report.note(format!("android_root: getprop failed: {error}")),
            }
        }
    }
    for file in ANDROID_PROP_FILES {
        if let Some(text) = read_bounded(&root.join(file)) {
            props.add_prop_file(&text);
        }
    }
    props
}

/// su binaries, root managers and build properties of a rooted or engineering build.
pub fn android_root(root: &Path, props: &Props) -> Vec<Detection> {
    let mut found = Vec::new();
    let detection = |detail: String, confidence| {
        Detection::new(SignalKind::Root, "android_root", detail, confidence)
    };
    for path in ANDROID_SU_PATHS {
        if exists(root, path) {
            found.push(detection(format!("su binary at /{path}"), Confidence::High));
        }
    }
    for path in ANDROID_ROOT_MANAGER_PATHS {
        if exists(root, path) {
            found.push(detection(
                format!("root manager file /{path}"),
                Confidence::High,
            ));
        }
    }
    if props
        .get("ro.build.tags")
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == "test-keys"))
    {
        found.push(detection(
            "ro.build.tags has test-keys".into(),
            Confidence::Medium,
        ));
    }
    if props.get("ro.debuggable") == Some("1") {
        found.push(detection("ro.debuggable=1".into(), Confidence::Medium));
    }
    if props.get("ro.secure") == Some("0") {
        found.push(detection("ro.secure=0".into(), Confidence::High));
    }
    if props.get("service.adb.root") == Some("1") {
        found.push(detection("service.adb.root=1".into(), Confidence::High));
    }
    found
}

/// Emulator properties and devices. Only ever called for Android trees.
pub fn android_emulator(root: &Path, props: &Props) -> Vec<Detection> {
    let mut found = Vec::new();
    let detection = |detail: String, confidence| {
        Detection::new(SignalKind::Emulator, "android_emulator", detail, confidence)
    };
    for key in ["ro.kernel.qemu", "ro.boot.qemu"] {
        if props.get(key) == Some("1") {
            found.push(detection(format!("{key}=1"), Confidence::High));
        }
    }
    for key in ["ro.hardware", "ro.boot.hardware", "ro.product.board"] {
        if let Some(value) = props.get(key)
            && ["goldfish", "ranchu", "vbox86", "nox", "ttvm_x86"].contains(&value)
        {
            found.push(detection(format!("{key}={value}"), Confidence::High));
        }
    }
    if let Some(model) = props.get("ro.product.model")
        && (model.contains("Android SDK built for")
            || model.starts_with("sdk_gphone")
            || model.contains("Emulator"))
    {
        found.push(detection(
            format!("ro.product.model={model}"),
            Confidence::Medium,
        ));
    }
    if let Some(manufacturer) = props.get("ro.product.manufacturer")
        && manufacturer.contains("Genymotion")
    {
        found.push(detection(
            format!("ro.product.manufacturer={manufacturer}"),
            Confidence::High,
        ));
    }
    for path in ANDROID_EMULATOR_PATHS {
        if exists(root, path) {
            found.push(detection(
                format!("emulator file /{path}"),
                Confidence::High,
            ));
        }
    }
    found
}

/// Jailbreak files visible from the app.
pub fn ios_jailbreak(root: &Path) -> Vec<Detection> {
    IOS_JAILBREAK_PATHS
        .iter()
        .filter(|path| exists(root, path))
        .map(|path| {
            Detection::new(
                SignalKind::Root,
                "ios_jailbreak",
                format!("jailbreak file /{path}"),
                Confidence::High,
            )
        })
        .collect()
}

/// An app in the iOS sandbox cannot create files outside its container; on a jailbroken
/// device it can.
#[cfg(target_os = "ios")]
fn ios_sandbox_escape(root: &Path) -> Vec<Detection> {
    let probe = root.join("private/medgate-sandbox-probe");
    match std::fs::write(&probe, b"medgate") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            vec![Detection::new(
                SignalKind::Root,
                "ios_jailbreak",
                "wrote outside the app sandbox (/private)",
                Confidence::High,
            )]
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn details(found: &[Detection]) -> Vec<&str> {
        found.iter().map(|d| d.detail.as_str()).collect()
    }

    #[test]
    fn a_stock_android_tree_is_clean() {
        let stock = tree(&[
            (
                "system/build.prop",
                "ro.build.tags=release-keys\nro.debuggable=0\nro.secure=1\nro.hardware=tensor\nro.product.model=Pixel 8\n",
            ),
            ("system/bin/sh", ""),
        ]);
        assert!(is_android(stock.path()));
        let mut report = Report::default();
        let props = android_props(stock.path(), false, &mut report);
        assert!(android_root(stock.path(), &props).is_empty());
        assert!(android_emulator(stock.path(), &props).is_empty());
    }

    #[test]
    fn a_magisk_rooted_tree() {
        let rooted = tree(&[
            ("system/build.prop", "ro.build.tags=test-keys\n"),
            ("default.prop", "ro.secure=0\nro.debuggable=1\n"),
            ("system/xbin/su", ""),
            ("sbin/.magisk/mirror", ""),
            ("data/adb/modules/zygisk/module.prop", ""),
        ]);
        let mut report = Report::default();
        let props = android_props(rooted.path(), false, &mut report);
        let found = android_root(rooted.path(), &props);
        assert_eq!(
            details(&found),
            [
                "su binary at /system/xbin/su",
                "root manager file /sbin/.magisk",
                "root manager file /data/adb/modules",
                "ro.build.tags has test-keys",
                "ro.debuggable=1",
                "ro.secure=0",
            ]
        );
        assert!(found.iter().all(|d| d.kind == SignalKind::Root));
    }

    #[test]
    fn an_emulator_tree_and_its_getprop() {
        let emulator = tree(&[
            (
                "system/build.prop",
                "ro.product.model=sdk_gphone64_arm64\nro.product.manufacturer=Google\n",
            ),
            ("dev/qemu_pipe", ""),
            (
                "system/bin/getprop",
                "#!/bin/sh\necho '[ro.kernel.qemu]: [1]'\necho '[ro.hardware]: [ranchu]'\n",
            ),
        ]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let getprop = emulator.path().join("system/bin/getprop");
            std::fs::set_permissions(&getprop, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut report = Report::default();
        let props = android_props(emulator.path(), cfg!(unix), &mut report);
        let found = android_emulator(emulator.path(), &props);
        let mut expected = vec![];
        if cfg!(unix) {
            expected.extend(["ro.kernel.qemu=1", "ro.hardware=ranchu"]);
        }
        expected.extend([
            "ro.product.model=sdk_gphone64_arm64",
            "emulator file /dev/qemu_pipe",
        ]);
        assert_eq!(details(&found), expected);
    }

    #[test]
    fn a_linux_host_is_not_an_android_tree() {
        let host = tree(&[("etc/os-release", "ID=debian\n"), ("dev/kvm", "")]);
        assert!(!is_android(host.path()) || cfg!(target_os = "android"));
    }

    #[test]
    fn ios_jailbreak_paths_in_a_fake_tree() {
        let clean = tree(&[("Applications/Health.app/Info.plist", "")]);
        assert!(ios_jailbreak(clean.path()).is_empty());
        let jailbroken = tree(&[
            ("var/jb/usr/bin/sileo", ""),
            ("Applications/Sileo.app/Info.plist", ""),
        ]);
        assert_eq!(
            details(&ios_jailbreak(jailbroken.path())),
            [
                "jailbreak file /Applications/Sileo.app",
                "jailbreak file /var/jb"
            ]
        );
    }
}
