// Android glue for the medgate SDK: the installation key in Android Keystore and the platform
// attestation steps (Android Key Attestation, Play Integrity), for the UniFFI bindings in
// package uniffi.medgate_ffi. See platform/README.md.
//
//   val client = MedgateClient.withPlatform(
//       config, KeystoreSigner(), AndroidAttestor(context, cloudProjectNumber = 1234L),
//       AttestationMethod.ANDROID_KEY_ATTESTATION)
//   client.attest()                     // blocks: call it off the main thread
//
// The SDK calls the attestor on a worker thread of its own and waits for the answer, and the
// client's calls block too: call the client off the main thread. Every failure is thrown as
// MedgateException.Platform with a one-line reason (any other exception would also arrive as
// Platform, but with its whole stack trace as the reason). Needs minSdk 28 (StrongBox,
// GET_SIGNING_CERTIFICATES), and com.google.android.play:integrity for Play Integrity.
package org.medgate.android

import android.content.Context
import android.content.pm.PackageManager
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import com.google.android.gms.tasks.Task
import com.google.android.gms.tasks.Tasks
import com.google.android.play.core.integrity.IntegrityManager
import com.google.android.play.core.integrity.IntegrityManagerFactory
import com.google.android.play.core.integrity.IntegrityTokenRequest
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.MessageDigest
import java.security.PrivateKey
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import java.util.concurrent.TimeUnit
import uniffi.medgate_ffi.InstallationSigner
import uniffi.medgate_ffi.MedgateException
import uniffi.medgate_ffi.PlatformAttestor
import uniffi.medgate_ffi.PlatformStatement
import uniffi.medgate_ffi.PlatformStep

private const val ANDROID_KEYSTORE = "AndroidKeyStore"

/**
 * The installation key: EC P-256 in Android Keystore under [alias], StrongBox when the device
 * has one (else the TEE), created on first use and kept. No user authentication, so background
 * refreshes can sign. Every DPoP proof and attestation is signed here; the key never leaves the
 * secure hardware.
 */
class KeystoreSigner @JvmOverloads constructor(
    private val alias: String = "medgate-installation",
    preferStrongBox: Boolean = true
) : InstallationSigner {

    init {
        platform("create the installation key") {
            if (!androidKeyStore().containsAlias(alias)) {
                generateP256(alias, preferStrongBox, attestationChallenge = null)
            }
        }
    }

    private val privateKey: PrivateKey by lazy {
        androidKeyStore().getKey(alias, null) as? PrivateKey
            ?: throw IllegalStateException("no private key under $alias")
    }

    /** The DER SubjectPublicKeyInfo (91 bytes), as PublicKey.getEncoded() gives it. */
    override fun publicKey(): ByteArray = platform("read the installation public key") {
        androidKeyStore().getCertificate(alias)?.publicKey?.encoded
            ?: throw IllegalStateException("no certificate under $alias")
    }

    /** SHA256withECDSA over [message]: a DER ECDSA-Sig-Value, which the SDK converts. */
    override fun sign(message: ByteArray): ByteArray = platform("sign with the installation key") {
        Signature.getInstance("SHA256withECDSA").apply {
            initSign(privateKey)
            update(message)
        }.sign()
    }
}

/**
 * The Android platform steps the SDK asks for: Android Key Attestation and, when
 * [cloudProjectNumber] is set, Play Integrity. App Attest steps are refused.
 *
 * Play Integrity uses classic requests: their tokens are encrypted with the app's own response
 * keys (Play Console, "manage and download my response encryption keys"), which medgate holds
 * and decrypts with on your server. Tokens from standard requests can only be decrypted by
 * Google's server, which medgate does not call.
 */
class AndroidAttestor @JvmOverloads constructor(
    context: Context,
    private val cloudProjectNumber: Long? = null,
    private val attestationAlias: String = "medgate-attestation",
    private val preferStrongBox: Boolean = true,
    private val timeoutSeconds: Long = 30
) : PlatformAttestor {

    private val integrity: IntegrityManager by lazy {
        IntegrityManagerFactory.create(context.applicationContext)
    }
    private val keyLock = Any()

    override fun attest(step: PlatformStep): PlatformStatement = when (step) {
        is PlatformStep.AndroidKeyAttestation ->
            PlatformStatement.AndroidKeyAttestation(keyAttestation(step.challenge))
        // The SDK's request hash, base64url of the binding, is the classic request's nonce.
        is PlatformStep.PlayIntegrity ->
            PlatformStatement.PlayIntegrity(playIntegrity(nonce = step.requestHash))
        is PlatformStep.AppAttestKey, is PlatformStep.AppAttestAssertion ->
            throw MedgateException.Platform("App Attest is Apple's; this device runs Android")
    }

    // LIMIT: Keystore fixes a key's attestation challenge when the key is generated, and the
    // challenge here (the binding) contains the installation key's thumbprint, so the installation
    // key cannot attest itself. Each step generates a short-lived key with the challenge, returns
    // its chain and deletes it. The chain proves the device (boot state, patch level, security
    // level) and this app (package, signing certificate, versionCode), bound to this challenge and
    // installation key; it does not prove that the installation key is in hardware (the server
    // answers hardware_key: false).
    private fun keyAttestation(challenge: ByteArray): List<ByteArray> =
        platform("Android key attestation") {
            synchronized(keyLock) {
                val keyStore = androidKeyStore()
                if (keyStore.containsAlias(attestationAlias)) keyStore.deleteEntry(attestationAlias)
                try {
                    generateP256(attestationAlias, preferStrongBox, challenge)
                    keyStore.getCertificateChain(attestationAlias)?.map { it.encoded }
                        ?: throw IllegalStateException("no certificate chain for $attestationAlias")
                } finally {
                    runCatching { keyStore.deleteEntry(attestationAlias) }
                }
            }
        }

    private fun playIntegrity(nonce: String): String = platform("Play Integrity") {
        val number = cloudProjectNumber
            ?: throw IllegalStateException("no Google Cloud project number configured")
        val request = IntegrityTokenRequest.builder()
            .setNonce(nonce)
            .setCloudProjectNumber(number)
            .build()
        await(integrity.requestIntegrityToken(request)).token()
    }

    /** Blocks on a Play task (Tasks.await refuses the main thread, as it should). */
    private fun <T> await(task: Task<T>): T = Tasks.await(task, timeoutSeconds, TimeUnit.SECONDS)
}

/**
 * The lowercase hex SHA-256 of the APK's signing certificate, for MedgateConfig.measurement (the
 * value `medgate admin` registers for the release, and the one Key Attestation reports).
 */
fun signingCertificateSha256(context: Context): String {
    val info = context.packageManager
        .getPackageInfo(context.packageName, PackageManager.GET_SIGNING_CERTIFICATES)
    val signer = info.signingInfo?.apkContentsSigners?.firstOrNull()
        ?: throw MedgateException.Config("the package has no signing certificate")
    return MessageDigest.getInstance("SHA-256").digest(signer.toByteArray())
        .joinToString("") { "%02x".format(it) }
}

private fun androidKeyStore(): KeyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

/** An EC P-256 signing key under [alias]; StrongBox first when asked, else the TEE. */
private fun generateP256(alias: String, strongBox: Boolean, attestationChallenge: ByteArray?) {
    val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
        .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
        .setDigests(KeyProperties.DIGEST_SHA256)
        .setUserAuthenticationRequired(false)
        .setIsStrongBoxBacked(strongBox)
        .apply { if (attestationChallenge != null) setAttestationChallenge(attestationChallenge) }
        .build()
    try {
        KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, ANDROID_KEYSTORE).apply {
            initialize(spec)
            generateKeyPair()
        }
    } catch (e: StrongBoxUnavailableException) {
        if (!strongBox) throw e
        generateP256(alias, strongBox = false, attestationChallenge = attestationChallenge)
    }
}

/** Runs [block], turning any failure into MedgateException.Platform("what: cause"). */
private inline fun <T> platform(what: String, block: () -> T): T =
    try {
        block()
    } catch (e: MedgateException) {
        throw e
    } catch (e: Exception) {
        val cause = (e as? ExecutionException)?.cause ?: e
        throw MedgateException.Platform("$what: ${cause.javaClass.simpleName}: ${cause.message}")
    }
