// iOS glue for the medgate SDK: the installation key in the Secure Enclave and Apple App Attest,
// for the UniFFI bindings (medgate_ffi.swift). See platform/README.md.
//
//   let attestor = AppAttestor()
//   let client = try MedgateClient.withPlatform(config: config, signer: try SecureEnclaveSigner(),
//                                              attestor: attestor, method: .appleAppAttest)
//   if let keyId = attestor.storedKeyId { client.restoreAppAttestKey(keyId: keyId) }
//   _ = try client.attest()             // blocks: call it off the main thread
//   if let keyId = client.appAttestKeyId() { try attestor.keep(keyId) }   // the accepted key
//
// The SDK calls the attestor on a worker thread of its own and waits for the answer, and the
// client's calls block too: call the client off the main thread. Every failure is thrown as
// MedgateError.Platform.

import DeviceCheck
import Foundation
import Security
// When the bindings are their own module (the XCFramework's Swift package), also:
// import medgate_ffi

/// The installation key: P-256 in the Secure Enclave under `tag`, created on first use and kept
/// (this device only, usable after the first unlock, no user presence, so background refreshes can
/// sign). Every DPoP proof and attestation is signed here; the key never leaves the enclave.
public final class SecureEnclaveSigner: InstallationSigner, @unchecked Sendable {
    // @unchecked: SecKey is immutable and thread-safe, but not marked Sendable.
    private let privateKey: SecKey

    public init(tag: String = "org.medgate.installation") throws {
        privateKey = try Self.find(tag: tag) ?? Self.create(tag: tag)
    }

    /// The uncompressed SEC1 point, 65 bytes 0x04 ‖ x ‖ y.
    public func publicKey() throws -> Data {
        guard let publicKey = SecKeyCopyPublicKey(privateKey) else {
            throw platformError("the installation key has no public key")
        }
        var error: Unmanaged<CFError>?
        guard let data = SecKeyCopyExternalRepresentation(publicKey, &error) as Data? else {
            throw platformError("export the installation public key", error)
        }
        return data
    }

    /// ECDSA P-256 over SHA-256(`message`): a DER ECDSA-Sig-Value, which the SDK converts.
    public func sign(message: Data) throws -> Data {
        var error: Unmanaged<CFError>?
        guard let signature = SecKeyCreateSignature(
            privateKey, .ecdsaSignatureMessageX962SHA256, message as CFData, &error) as Data?
        else {
            throw platformError("sign with the installation key", error)
        }
        return signature
    }

    private static func find(tag: String) throws -> SecKey? {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeyClass as String: kSecAttrKeyClassPrivate,
            kSecAttrApplicationTag as String: Data(tag.utf8),
            kSecReturnRef as String: true,
        ]
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess: return (item as! SecKey)
        case errSecItemNotFound: return nil
        default: throw MedgateError.Platform(reason: "find the installation key: OSStatus \(status)")
        }
    }

    private static func create(tag: String) throws -> SecKey {
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            kCFAllocatorDefault, kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
            .privateKeyUsage, &error)
        else {
            throw platformError("create the installation key's access control", error)
        }
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: Data(tag.utf8),
                kSecAttrAccessControl as String: access,
            ] as [String: Any],
        ]
        guard let key = SecKeyCreateRandomKey(attributes as CFDictionary, &error) else {
            throw platformError("create the installation key in the Secure Enclave", error)
        }
        return key
    }
}

/// The App Attest steps the SDK asks for (DCAppAttestService). The interface carries key ids as raw
/// bytes; Apple's API takes and returns them base64-encoded, and this class converts. The attested
/// key's id is kept in the Keychain (this device only: App Attest keys never move to another
/// device) once the server accepted it (`keep`), for `MedgateClient.restoreAppAttestKey` at the
/// next start. Android steps are refused.
@available(iOS 14.0, macOS 11.0, *)
public final class AppAttestor: PlatformAttestor, @unchecked Sendable {
    // @unchecked: DCAppAttestService.shared is thread-safe; the rest is immutable.
    private let service = DCAppAttestService.shared
    private let keyIdItem: KeychainItem
    private let appId: String?
    private let timeout: DispatchTimeInterval

    /// `appId` (`TEAMID.bundle.id`) only for a self-built app, whose build is not the registered
    /// one; `account` names the Keychain item that keeps the key id.
    public init(appId: String? = nil, account: String = "org.medgate.app-attest-key-id",
                timeout: DispatchTimeInterval = .seconds(30)) {
        keyIdItem = KeychainItem(account: account)
        self.appId = appId
        self.timeout = timeout
    }

    /// The id (raw bytes) of the key an earlier run attested, if any.
    public var storedKeyId: Data? { keyIdItem.read() }

    /// Keeps the key id the server accepted (`client.appAttestKeyId()` after an attestation),
    /// for `restoreAppAttestKey` at the next start.
    public func keep(_ keyId: Data) throws { try keyIdItem.write(keyId) }

    /// Forgets the stored key id: after the server refused the key, or to start over.
    public func forgetKey() { keyIdItem.delete() }

    public func attest(step: PlatformStep) throws -> PlatformStatement {
        switch step {
        case .appAttestKey(let clientDataHash):
            guard service.isSupported else {
                throw MedgateError.Platform(reason: "App Attest is not supported here (a simulator?)")
            }
            let keyId: String = try wait("App Attest generateKey") {
                self.service.generateKey(completionHandler: $0)
            }
            let object: Data = try wait("App Attest attestKey") {
                self.service.attestKey(keyId, clientDataHash: clientDataHash, completionHandler: $0)
            }
            guard let rawKeyId = Data(base64Encoded: keyId) else {
                throw MedgateError.Platform(reason: "App Attest returned a key id that is not base64")
            }
            // Kept only once the server accepted it: see `keep`.
            return .appAttestKey(keyId: rawKeyId, attestationObject: object, appId: appId)

        case .appAttestAssertion(let keyId, let clientDataHash):
            // An invalid key (the app was reinstalled, the device restored) is forgotten, so the
            // next start attests a new one.
            let assertion: Data = try wait("App Attest generateAssertion", forgetInvalidKey: true) {
                self.service.generateAssertion(
                    keyId.base64EncodedString(), clientDataHash: clientDataHash,
                    completionHandler: $0)
            }
            return .appAttestAssertion(keyId: keyId, assertion: assertion)

        case .androidKeyAttestation, .playIntegrity:
            throw MedgateError.Platform(reason: "an Android step; this device runs iOS")
        }
    }

    /// Runs an App Attest call and waits for its completion handler: the SDK's callback is
    /// synchronous and runs on the SDK's worker thread, where blocking is fine.
    private func wait<Value>(
        _ what: String, forgetInvalidKey: Bool = false,
        _ start: (@escaping @Sendable (Value?, Error?) -> Void) -> Void
    ) throws -> Value {
        if Thread.isMainThread {
            throw MedgateError.Platform(reason: "\(what) on the main thread: call the client off it")
        }
        let outcome = Outcome<Value>()
        start { value, error in
            outcome.value = value
            outcome.error = error
            outcome.done.signal()
        }
        guard outcome.done.wait(timeout: .now() + timeout) == .success else {
            throw MedgateError.Platform(reason: "\(what) timed out")
        }
        if let value = outcome.value { return value }
        if forgetInvalidKey, (outcome.error as? DCError)?.code == .invalidKey { forgetKey() }
        throw platformError(what, outcome.error)
    }
}

/// One completion handler's result; the semaphore orders the write before the read.
private final class Outcome<Value>: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var value: Value?
    var error: Error?
}

/// A generic-password Keychain item: this device only, readable after the first unlock.
private struct KeychainItem {
    let account: String

    private var query: [String: Any] {
        [kSecClass as String: kSecClassGenericPassword,
         kSecAttrService as String: "org.medgate",
         kSecAttrAccount as String: account]
    }

    func read() -> Data? {
        var query = self.query
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        guard SecItemCopyMatching(query as CFDictionary, &item) == errSecSuccess else { return nil }
        return item as? Data
    }

    func write(_ data: Data) throws {
        delete()
        var query = self.query
        query[kSecValueData as String] = data
        query[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(query as CFDictionary, nil)
        guard status == errSecSuccess else {
            throw MedgateError.Platform(reason: "save the App Attest key id: OSStatus \(status)")
        }
    }

    func delete() { SecItemDelete(query as CFDictionary) }
}

private func platformError(_ what: String, _ error: Unmanaged<CFError>?) -> MedgateError {
    platformError(what, error?.takeRetainedValue() as Error?)
}

private func platformError(_ what: String, _ error: Error? = nil) -> MedgateError {
    guard let error = error as NSError? else { return .Platform(reason: what) }
    return .Platform(reason: "\(what): \(error.domain) \(error.code) \(error.localizedDescription)")
}
