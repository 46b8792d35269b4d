import Foundation
import M365Sandbox
import RelayServer
import RelayTestSupport
import Testing

/// Tries a handshake at each version on each port; prints `{"port/version": "TLSv1.x" | "refused: ..."}`.
private let handshakeScript = #"""
ports = json.loads(sys.argv[1])
out = {}
for kind, port in ports:
    for version in ["1.1", "1.2", "1.3"]:
        try:
            t = starttls(port, sys.argv[2], version) if kind == "starttls" else implicit(port, sys.argv[2], version)
            out[kind + "/" + version] = t.version()
            t.close()
        except (ssl.SSLError, OSError) as error:
            out[kind + "/" + version] = "refused: " + str(error)
print(json.dumps(out))
"""#

/// The fingerprint of the certificate a new STARTTLS session is shown.
private let fingerprintScript = #"""
t = starttls(int(sys.argv[1]), sys.argv[2])
print(json.dumps({"fingerprint": fingerprint(t), "expected": [pem_fingerprint(path) for path in sys.argv[3:]]}))
"""#

/// A session that starts TLS, opens a message, says so in a marker file, waits
/// for a go file, then finishes the message: it spans a certificate reload.
private let longSessionScript = #"""
port, cafile, marker, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t = starttls(port, cafile)
g = t.makefile("rb")
replies = []
for command in [b"EHLO long.test", b"MAIL FROM:<scanner@contoso.com>", b"RCPT TO:<someone@contoso.com>", b"DATA"]:
    t.sendall(command + b"\r\n")
    replies.append(reply(g))
t.sendall(b"From: scanner@contoso.com\r\nSubject: across the reload\r\n\r\nfirst half\r\n")
open(marker, "w").write(fingerprint(t))
started = time.monotonic()
while not os.path.exists(go) and time.monotonic() - started < 30:
    time.sleep(0.05)
t.sendall(b"second half\r\n.\r\n")
replies.append(reply(g))
t.sendall(b"QUIT\r\n")
replies.append(reply(g))
print(json.dumps({"fingerprint": fingerprint(t), "replies": replies}))
"""#

@Suite("End to end: server TLS")
struct ServerTLSEndToEndTests {
    @Test func tls11IsRefusedOnStartTLSAndImplicitListeners() async throws {
        let (relay, caFile, _) = try await RelayHarness.withLimits(
            [], listener: "tls: starttls\n    - address: \"127.0.0.1:0\"\n      tls: implicit", tls: true)
        let ports = "[[\"starttls\", \(relay.ports[0])], [\"implicit\", \(relay.ports[1])]]"
        let result = try await runAbuseScript(handshakeScript, [ports, caFile])
        for kind in ["starttls", "implicit"] {
            #expect((result["\(kind)/1.1"] as? String)?.hasPrefix("refused") == true, "\(kind): \(result)")
            #expect(result["\(kind)/1.2"] as? String == "TLSv1.2", "\(kind): \(result)")
            #expect(result["\(kind)/1.3"] as? String == "TLSv1.3", "\(kind): \(result)")
        }
        try await relay.stop()
    }

    @Test func minimumVersion13RefusesTLS12() async throws {
        let (relay, caFile, _) = try await RelayHarness.withLimits(
            [], listener: "tls: starttls\n    - address: \"127.0.0.1:0\"\n      tls: implicit", tls: true, minVersion: "1.3")
        let ports = "[[\"starttls\", \(relay.ports[0])], [\"implicit\", \(relay.ports[1])]]"
        let result = try await runAbuseScript(handshakeScript, [ports, caFile])
        for kind in ["starttls", "implicit"] {
            #expect((result["\(kind)/1.1"] as? String)?.hasPrefix("refused") == true, "\(kind): \(result)")
            #expect((result["\(kind)/1.2"] as? String)?.hasPrefix("refused") == true, "\(kind): \(result)")
            #expect(result["\(kind)/1.3"] as? String == "TLSv1.3", "\(kind): \(result)")
        }
        try await relay.stop()
    }

    @Test func requireTLSRefusesMailBeforeStartTLS() async throws {
        let (relay, caFile, _) = try await RelayHarness.withLimits([], listener: "tls: starttls\n      require_tls: true", tls: true)
        let result = try await runAbuseScript(#"""
            s = connect(int(sys.argv[1]))
            f = s.makefile("rb")
            reply(f)
            s.sendall(b"EHLO plain.test\r\n"); reply(f)
            s.sendall(b"MAIL FROM:<scanner@contoso.com>\r\n")
            plain = reply(f)
            s.close()
            t = starttls(int(sys.argv[1]), sys.argv[2])
            g = t.makefile("rb")
            t.sendall(b"EHLO tls.test\r\n"); reply(g)
            t.sendall(b"MAIL FROM:<scanner@contoso.com>\r\n")
            print(json.dumps({"plain": plain, "tls": reply(g)}))
            """#, [String(relay.port), caFile])
        #expect((result["plain"] as? [String]) == ["530 5.7.0 Must issue a STARTTLS command first"], "\(result)")
        #expect((result["tls"] as? [String]) == ["250 2.1.0 Sender ok"], "\(result)")
        try await relay.stop()
    }

    /// `reloadTLS()`: new sessions get the new certificate, a session opened
    /// before completes its message, a bad file keeps the old certificate.
    @Test func reloadSwapsTheCertificateForNewSessionsOnly() async throws {
        let (relay, caFile, authority) = try await RelayHarness.withLimits([], listener: "tls: starttls", tls: true)
        let directory = relay.directory
        let port = String(relay.port)
        let before = try await runAbuseScript(fingerprintScript, [port, caFile, directory.file("relay.crt")])
        let original = try #require(before["fingerprint"] as? String)
        #expect((before["expected"] as? [String]) == [original])

        let marker = directory.file("opened"), go = directory.file("go")
        let session = Task { try await ExternalProcess.python(abusePythonPrelude + longSessionScript, [port, caFile, marker, go]) }
        #expect(await eventually(timeout: 60) { FileManager.default.fileExists(atPath: marker) }, "the long session never opened its message")

        try writeTestCertificate(authority, in: directory)
        try relay.application.reloadTLS()
        let after = try await runAbuseScript(fingerprintScript, [port, caFile, directory.file("relay.crt")])
        let renewed = try #require(after["fingerprint"] as? String)
        #expect(renewed != original, "a new session still gets the old certificate")
        #expect((after["expected"] as? [String]) == [renewed])

        FileManager.default.createFile(atPath: go, contents: Data())
        let finished = lastJSONObject(try await session.value)
        #expect(finished["fingerprint"] as? String == original, "the open session kept its TLS")
        let replies = finished["replies"] as? [[String]] ?? []
        #expect(replies.count == 6 && replies[4].first?.hasPrefix("250 2.0.0") == true, "the session opened before the reload lost its message: \(replies)")
        #expect(try await eventually { try relay.sandbox.mailStore.messages().count == 1 })

        // A broken certificate file: the reload fails, names the file, and the renewed certificate stays.
        let broken = try directory.write("relay.crt", "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n", mode: 0o644)
        let error = #expect(throws: RelayStartupError.self) { try relay.application.reloadTLS() }
        #expect(error?.description.contains(broken) == true, "\(String(describing: error))")
        let still = try await runAbuseScript(fingerprintScript, [port, caFile])
        #expect(still["fingerprint"] as? String == renewed)
        try await relay.stop()
    }

    /// The same with a real SIGHUP to the built binary.
    @Test func sighupReloadsTheCertificateOfTheRunningBinary() async throws {
        let directory = TemporaryDirectory("sighup")
        let authority = try SandboxCertificateAuthority(commonName: "sighup test CA")
        let caFile = try directory.write("ca.pem", authority.certificatePEM + "\n", mode: 0o644)
        let (certificate, key) = try writeTestCertificate(authority, in: directory)
        let port = freeLoopbackPort()
        let configuration = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(port)"
                  tls: starttls
              tls:
                certificate_file: \(certificate)
                private_key_file: \(key)
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                route: sandbox
            routes:
              - name: sandbox
                mode: sandbox
            """)
        let relay = try RelayCommandProcess(["serve", "--config", configuration], workingDirectory: directory.path)
        let log = { relay.stdout + relay.stderr }
        #expect(await eventually(timeout: 60) { log().contains("SMTP listener started") }, "the relay did not start: \(log())")

        let before = try await runAbuseScript(fingerprintScript, [String(port), caFile])
        let original = try #require(before["fingerprint"] as? String)
        let marker = directory.file("opened"), go = directory.file("go")
        let session = Task { try await ExternalProcess.python(abusePythonPrelude + longSessionScript, [String(port), caFile, marker, go]) }
        #expect(await eventually(timeout: 60) { FileManager.default.fileExists(atPath: marker) })

        try writeTestCertificate(authority, in: directory)
        kill(relay.pid, SIGHUP)
        #expect(await eventually(timeout: 60) { log().contains("TLS certificate reloaded") }, "\(log())")
        let after = try await runAbuseScript(fingerprintScript, [String(port), caFile, certificate])
        let renewed = try #require(after["fingerprint"] as? String)
        #expect(renewed != original)
        #expect((after["expected"] as? [String]) == [renewed])

        FileManager.default.createFile(atPath: go, contents: Data())
        let finished = lastJSONObject(try await session.value)
        #expect(finished["fingerprint"] as? String == original)
        let replies = finished["replies"] as? [[String]] ?? []
        #expect(replies.count == 6 && replies[4].first?.hasPrefix("250 2.0.0") == true, "\(replies)")

        // A key that does not match the certificate: logged with the file, the renewed certificate stays.
        let other = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        _ = try directory.write("relay.key", other.privateKeyPEM + "\n")
        kill(relay.pid, SIGHUP)
        #expect(await eventually(timeout: 60) { log().contains("TLS reload failed") }, "\(log())")
        #expect(log().contains(certificate), "the error names the file: \(log())")
        #expect(relay.isRunning, "a failed reload must not stop the relay")
        let still = try await runAbuseScript(fingerprintScript, [String(port), caFile])
        #expect(still["fingerprint"] as? String == renewed)

        #expect(await relay.terminate() == 0, "\(log())")
    }
}
