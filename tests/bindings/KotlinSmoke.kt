// The generated Kotlin bindings on the JVM (through JNA, against libmedgate_ffi.so): a signer
// implemented in Kotlin crosses the boundary both ways. The key is a JVM EC key, handled as
// Android Keystore hands one out (SubjectPublicKeyInfo, DER signatures). Given a node
// (`KotlinSmokeKt SERVER GATEWAY APP VERSION MEASUREMENT`), it attests with SDK evidence signed
// by that key and calls the gateway with a proof it signed. Compiled by scripts/binding-tests
// and run by tests/bindings/test_platform.py against its node.
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import uniffi.medgate_ffi.*

class JvmSigner : InstallationSigner {
    var signed = 0

    private val pair = KeyPairGenerator.getInstance("EC").apply {
        initialize(ECGenParameterSpec("secp256r1"))
    }.generateKeyPair()

    override fun publicKey(): ByteArray = pair.public.encoded

    override fun sign(message: ByteArray): ByteArray {
        signed += 1
        return Signature.getInstance("SHA256withECDSA").run {
            initSign(pair.private)
            update(message)
            sign()
        }
    }
}

class NoKeystore : InstallationSigner {
    override fun publicKey(): ByteArray = throw IllegalStateException("no key in the keystore")
    override fun sign(message: ByteArray): ByteArray = throw IllegalStateException("never called")
}

class Unreachable : PlatformAttestor {
    override fun attest(step: PlatformStep): PlatformStatement =
        throw MedgateException.Platform("not reached: the challenge fails first")
}

fun config(enrolmentCode: String? = null) = MedgateConfig(
    serverUrl = "http://127.0.0.1:9", gatewayUrl = "http://127.0.0.1:9",
    appId = "org.example.app", appVersion = "1.0.0", measurement = "ab".repeat(32),
    keyPath = null, detect = false, allowedLibraries = emptyList(), refreshMarginSecs = 30L,
    enrolmentCode = enrolmentCode,
)

fun main(args: Array<String>) {
    var passed = 0
    var failed = 0
    fun case(name: String, body: () -> Unit) {
        try {
            body(); passed += 1; println("ok   $name")
        } catch (e: Throwable) {
            failed += 1; println("FAIL $name: $e")
        }
    }
    case("a Kotlin signer's key is the installation id") {
        val signer = JvmSigner()
        val client = MedgateClient.withPlatform(config(), signer, Unreachable(), AttestationMethod.ANDROID_KEY_ATTESTATION)
        check(client.installationId().length == 43)
        check(client.attestationMethod() == AttestationMethod.ANDROID_KEY_ATTESTATION)
        try {
            client.attest(); error("attest should fail")
        } catch (e: MedgateException.Network) {
        }
    }
    case("a signer that throws is a Platform error, not a crash") {
        try {
            MedgateClient.withPlatform(config(), NoKeystore(), null, AttestationMethod.SDK)
            error("the constructor should fail")
        } catch (e: MedgateException.Platform) {
            check("no key in the keystore" in e.message.orEmpty()) { e.message.orEmpty() }
        }
    }
    case("the file key still works, with an enrolment code") {
        val client = MedgateClient(config(enrolmentCode = "mge_code"))
        check(client.attestationMethod() == AttestationMethod.SDK)
        client.restoreAppAttestKey(byteArrayOf(1, 2, 3))
        check(client.attestationMethod() == AttestationMethod.APPLE_APP_ATTEST)
        check(client.appAttestKeyId()?.toList() == listOf<Byte>(1, 2, 3))
    }
    if (args.size == 5) {
        val (server, gateway, app, version, measurement) = args
        case("attest with a Kotlin-held key and call the gateway with its proof") {
            val signer = JvmSigner()
            val online = config().copy(
                serverUrl = server, gatewayUrl = gateway, appId = app, appVersion = version,
                measurement = measurement,
            )
            val client = MedgateClient.withPlatform(online, signer, null, AttestationMethod.SDK)
            val granted = client.attest()
            check(granted.decision == "allow") { granted.decision }
            check(granted.installationId == client.installationId())
            val headers = client.signRequest("GET", "/api/entries")
            val request = HttpRequest.newBuilder(URI.create("$gateway/api/entries"))
                .header("Authorization", headers.authorization)
                .header("DPoP", headers.dpop)
                .build()
            val response = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString())
            check(response.statusCode() == 200) { "gateway answered ${response.statusCode()}" }
            check(client.installationId() in response.body()) { response.body() }
            check(signer.signed == 2) { "the evidence and the proof, signed in Kotlin: ${signer.signed}" }
        }
    }
    println("$passed passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
