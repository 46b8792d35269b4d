import Foundation
import M365Sandbox
import RelayCore
import RelayTestSupport
import Testing

/// One scripted SMTP conversation, run by a small python client (raw
/// sockets, so that every reply code is visible, even after a `554` banner).
struct SMTPDialogue: Sendable {
    var source: String
    var port: Int
    /// Steps: ["ehlo"], ["starttls"], ["auth_plain", user, password],
    /// ["auth_login", user, password], ["data", body], or ["cmd", line].
    var steps: [[String]]

    init(from source: String = "127.0.0.1", port: Int, _ steps: [[String]]) {
        self.source = source
        self.port = port
        self.steps = steps
    }

    /// What each step got back.
    struct Reply: Sendable, CustomStringConvertible {
        var step: String
        var code: Int
        var text: String
        var milliseconds: Int
        var description: String { "\(step) -> \(code) \(text)" }
    }

    static let script = """
    import base64, json, socket, ssl, sys, time
    args = json.loads(sys.argv[1])
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    class Conn:
        def __init__(self, source, port):
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0))
            self.f = self.sock.makefile("rb")
        def send(self, text):
            self.sock.sendall(text.encode() + b"\\r\\n")
        def reply(self):
            lines = []
            while True:
                line = self.f.readline()
                if not line:
                    raise EOFError("connection closed")
                lines.append(line.decode("utf-8", "replace").rstrip("\\r\\n"))
                if len(line) < 4 or line[3:4] != b"-":
                    break
            return int(lines[-1][:3]), "\\n".join(l[4:] for l in lines)
    results = []
    for d in args["dialogues"]:
        out = []
        def record(name, started, reply):
            out.append([name, reply[0], reply[1], int((time.monotonic() - started) * 1000)])
        c = None
        try:
            started = time.monotonic()
            c = Conn(d["source"], d["port"])
            record("banner", started, c.reply())
            for step in d["steps"]:
                kind = step[0]
                started = time.monotonic()
                if kind == "ehlo":
                    c.send("EHLO client.test"); record("ehlo", started, c.reply())
                elif kind == "starttls":
                    c.send("STARTTLS"); r = c.reply(); record("starttls", started, r)
                    if r[0] == 220:
                        context = ssl.create_default_context(cafile=args["cafile"])
                        c.sock = context.wrap_socket(c.sock, server_hostname="localhost")
                        c.f = c.sock.makefile("rb")
                elif kind == "auth_plain":
                    c.send("AUTH PLAIN " + b64("\\0" + step[1] + "\\0" + step[2])); record("auth", started, c.reply())
                elif kind == "auth_login":
                    c.send("AUTH LOGIN"); r = c.reply()
                    if r[0] == 334:
                        c.send(b64(step[1])); r = c.reply()
                    if r[0] == 334:
                        c.send(b64(step[2])); r = c.reply()
                    record("auth", started, r)
                elif kind == "data":
                    c.send("DATA"); r = c.reply()
                    if r[0] == 354:
                        c.sock.sendall(step[1].encode() + b".\\r\\n"); r = c.reply()
                    record("data", started, r)
                else:
                    c.send(step[1]); record(step[1].split(" ")[0], started, c.reply())
        except Exception as e:
            out.append(["error", 0, repr(e), 0])
        try:
            if c is not None:
                c.send("QUIT")
                c.sock.close()
        except Exception:
            pass
        results.append(out)
    print(json.dumps(results))
    """

    /// Runs the dialogues one after another (in order: lockout tests depend on it).
    static func run(_ dialogues: [SMTPDialogue], caFile: String? = nil) async throws -> [[Reply]] {
        let arguments: [String: Any] = [
            "cafile": caFile ?? "",
            "dialogues": dialogues.map { ["source": $0.source, "port": $0.port, "steps": $0.steps] as [String: Any] },
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let result = try await ExternalProcess.python(script, [json], timeout: 120)
        guard let line = result.stdout.split(separator: "\n").last,
              let sessions = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[[Any]]] else {
            Issue.record("the python client printed nothing usable; stderr: \(result.stderr)")
            return []
        }
        return sessions.map { steps in
            steps.map { Reply(step: $0[0] as? String ?? "?", code: $0[1] as? Int ?? 0, text: $0[2] as? String ?? "", milliseconds: $0[3] as? Int ?? 0) }
        }
    }

    static func run(_ dialogue: SMTPDialogue, caFile: String? = nil) async throws -> [Reply] {
        try await run([dialogue], caFile: caFile).first ?? []
    }
}

extension [SMTPDialogue.Reply] {
    /// The replies to steps named `step`, in order (a command step is named by its verb).
    func codes(_ step: String) -> [Int] { filter { $0.step == step }.map(\.code) }
    func first(_ step: String) -> SMTPDialogue.Reply? { first { $0.step == step } }
}

@Suite("End to end: password clients, AUTH, lockout, rate limits, no XCLIENT")
struct ClientAuthenticationTests {
    static let password = "erp-Secret 2026"
    static let message = "From: erp@contoso.com\r\nTo: someone@contoso.com\r\nSubject: invoice\r\n\r\nhello\r\n"

    /// A relay with the given listeners (YAML list items) and clients, a test
    /// certificate, and `erp.hash` holding the hash of ``password`` (cheap
    /// parameters unless `hash` is given).
    static func relay(
        listeners: [String] = ["tls: starttls"], clients: (String) -> String, limits: String = "", hash: String? = nil
    ) async throws -> (RelayHarness, caFile: String) {
        let authority = try SandboxCertificateAuthority(commonName: "auth e2e CA")
        let leaf = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let relay = try await RelayHarness { directory in
            let certificate = try directory.write("relay.crt", leaf.certificatePEM + "\n", mode: 0o644)
            let key = try directory.write("relay.key", leaf.privateKeyPEM + "\n")
            let phc = try hash ?? RelayPasswordHash.make(
                password: Array(password.utf8), parameters: .init(logN: 10, blockSize: 8, parallelism: 1)).encoded
            let hashFile = try directory.write("erp.hash", phc + "\n")
            let listenerItems = listeners.map { "    - address: \"127.0.0.1:0\"\n      " + $0.replacingOccurrences(of: "\n", with: "\n      ") }
            return """
            server:
              hostname: relay.test
              listeners:
            \(listenerItems.joined(separator: "\n"))
              tls:
                certificate_file: \(certificate)
                private_key_file: \(key)
            \(limits)
            storage:
              url: "sqlite:\(directory.file("relay.sqlite"))"
            clients:
            \(clients(hashFile))
            routes:
              - name: sandbox
                mode: sandbox
            """
        }
        let caFile = try relay.directory.write("ca.pem", authority.certificatePEM + "\n", mode: 0o644)
        return (relay, caFile)
    }

    /// `local`: 127.0.0.1 by address, any sender. `erp`: password, only `*@contoso.com`.
    static func standardClients(erpNetworks: String? = nil, extra: String = "") -> (String) -> String {
        { hashFile in
            """
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                route: sandbox
              - name: erp
                auth: password
                username: erp
                password_hash_file: \(hashFile)
                allowed_senders: ["*@contoso.com"]
            \(erpNetworks.map { "    networks: \($0)" } ?? "")
                route: sandbox
            \(extra)
            """
        }
    }

    static func mailSteps(from sender: String = "erp@contoso.com") -> [[String]] {
        [["cmd", "MAIL FROM:<\(sender)>"], ["cmd", "RCPT TO:<someone@contoso.com>"], ["data", message]]
    }

    // MARK: Password clients over STARTTLS

    @Test func aPasswordClientSendsOverSTARTTLSAndAUTHIsOfferedOnlyUnderTLS() async throws {
        let (relay, caFile) = try await Self.relay(clients: Self.standardClients())
        let plainAuth = ["auth_plain", "erp", Self.password]
        let sessions = try await SMTPDialogue.run([
            // 127.0.0.2 matches no address client: it may connect to authenticate.
            SMTPDialogue(from: "127.0.0.2", port: relay.port, [
                ["ehlo"], ["cmd", "AUTH PLAIN " + Data("\0erp\0\(Self.password)".utf8).base64EncodedString()],
                ["cmd", "MAIL FROM:<erp@contoso.com>"], ["starttls"], ["ehlo"], ["cmd", "MAIL FROM:<erp@contoso.com>"], ["cmd", "RSET"],
                plainAuth,
            ] + Self.mailSteps() + [["cmd", "MAIL FROM:<someone@fabrikam.com>"]]),
            // AUTH LOGIN works too.
            SMTPDialogue(from: "127.0.0.2", port: relay.port, [["ehlo"], ["starttls"], ["ehlo"], ["auth_login", "erp", Self.password]]),
            // The address client may send as anyone until it authenticates as erp; then erp's rules apply.
            SMTPDialogue(from: "127.0.0.1", port: relay.port, [
                ["ehlo"], ["starttls"], ["ehlo"], ["cmd", "MAIL FROM:<someone@fabrikam.com>"], ["cmd", "RSET"],
                plainAuth, ["cmd", "MAIL FROM:<someone@fabrikam.com>"],
            ]),
        ], caFile: caFile)
        let erp = try #require(sessions.first)
        #expect(erp.codes("banner") == [220], "\(erp)")
        let ehlos = erp.filter { $0.step == "ehlo" }
        #expect(ehlos.count == 2, "\(erp)")
        #expect(ehlos.first?.text.contains("AUTH") == false, "AUTH offered before TLS: \(erp)")
        #expect(ehlos.last?.text.contains("AUTH PLAIN LOGIN") == true, "AUTH not offered after TLS: \(erp)")
        #expect(erp.codes("AUTH") == [504], "AUTH accepted before TLS: \(erp)")
        #expect(erp.codes("MAIL") == [530, 530, 250, 550], "\(erp)")
        #expect(erp.first("MAIL")?.text.contains("5.7.0 Authentication required") == true, "\(erp)")
        #expect(erp.codes("auth") == [235], "\(erp)")
        #expect(erp.codes("data") == [250], "\(erp)")

        #expect(sessions[1].codes("auth") == [235], "AUTH LOGIN: \(sessions[1])")
        #expect(sessions[2].codes("MAIL") == [250, 550], "after AUTH the session has erp's sender rules: \(sessions[2])")
        #expect(sessions[2].codes("auth") == [235], "\(sessions[2])")

        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 }, "the sandbox never got the message")
        let stored = try #require(try store.messages().first)
        #expect(stored.sender == "erp@contoso.com")
        let received = splitReceived(try store.content(of: stored)).received
        #expect(received.contains("with ESMTPSA"), "\(received)")
        #expect(received.contains("[127.0.0.2]"), "\(received)")
        try await relay.stop()
    }

    @Test func wrongCredentialsGet535AndAreNeverLogged() async throws {
        let (relay, caFile) = try await Self.relay(clients: Self.standardClients())
        let replies = try await SMTPDialogue.run(SMTPDialogue(from: "127.0.0.2", port: relay.port, [
            ["ehlo"], ["starttls"], ["ehlo"],
            ["auth_plain", "erp", "not the password"],
            ["auth_login", "nobody", Self.password],
            ["cmd", "AUTH PLAIN !!notbase64"],
            ["auth_plain", "erp", Self.password],
        ] + Self.mailSteps()), caFile: caFile)
        #expect(replies.codes("auth") == [535, 535, 235], "\(replies)")
        #expect(replies.first("auth")?.text.contains("5.7.8") == true, "\(replies)")
        #expect(replies.codes("AUTH") == [501], "\(replies)")
        #expect(replies.codes("data") == [250], "\(replies)")
        try await relay.stop()
    }

    // MARK: Lockout

    @Test func fiveFailuresLockTheAddressOutAcrossReconnects() async throws {
        let (relay, caFile) = try await Self.relay(clients: Self.standardClients())
        let tls: [[String]] = [["ehlo"], ["starttls"], ["ehlo"]]
        let wrong = (0..<5).map { _ in SMTPDialogue(from: "127.0.0.5", port: relay.port, tls + [["auth_plain", "erp", "guess"]]) }
        let sessions = try await SMTPDialogue.run(wrong + [
            // The right password, from the locked-out address, on a new connection.
            SMTPDialogue(from: "127.0.0.5", port: relay.port, tls + [["auth_plain", "erp", Self.password], ["cmd", "MAIL FROM:<erp@contoso.com>"]]),
            // Another address is not affected.
            SMTPDialogue(from: "127.0.0.6", port: relay.port, tls + [["auth_plain", "erp", Self.password]]),
        ], caFile: caFile)
        try #require(sessions.count == 7)
        let failures = sessions[0..<5].map { $0.first("auth") }
        #expect(failures.map(\.?.code) == [535, 535, 535, 535, 535], "\(sessions)")
        // Each failure waits longer before its reply: 0.1 s, doubling.
        let delays = failures.map { $0?.milliseconds ?? 0 }
        #expect(delays[4] >= 1500, "no growing delay: \(delays)")
        let locked = try #require(sessions[5].first("auth"))
        #expect(locked.code == 454, "\(sessions[5])")
        #expect(locked.text.contains("4.7.0"), "\(locked)")
        #expect(sessions[5].codes("MAIL") == [530], "\(sessions[5])")
        #expect(sessions[6].codes("auth") == [235], "\(sessions[6])")
        try await relay.stop()
    }

    // MARK: Plaintext AUTH

    @Test func plaintextAUTHOnlyOnALoopbackListenerThatAllowsIt() async throws {
        let (relay, _) = try await Self.relay(
            listeners: ["tls: none", "tls: none\nallow_plaintext_auth: true"], clients: Self.standardClients())
        let ports = relay.ports
        try #require(ports.count == 2)
        let (closed, open) = (ports[0], ports[1])
        let sessions = try await SMTPDialogue.run([
            SMTPDialogue(from: "127.0.0.1", port: closed, [["ehlo"], ["auth_plain", "erp", Self.password]]),
            // Nobody could log in on this listener, so 127.0.0.2 is nobody.
            SMTPDialogue(from: "127.0.0.2", port: closed, [["ehlo"], ["auth_plain", "erp", Self.password]]),
            SMTPDialogue(from: "127.0.0.1", port: open, [["ehlo"], ["auth_plain", "erp", Self.password], ["cmd", "MAIL FROM:<someone@fabrikam.com>"]]),
            SMTPDialogue(from: "127.0.0.2", port: open, [["ehlo"], ["cmd", "MAIL FROM:<erp@contoso.com>"], ["cmd", "RSET"], ["auth_plain", "erp", Self.password]]
                         + Self.mailSteps()),
        ])
        try #require(sessions.count == 4)
        #expect(sessions[0].first("ehlo")?.text.contains("AUTH") == false, "\(sessions[0])")
        #expect(sessions[0].codes("auth") == [504], "\(sessions[0])")
        #expect(sessions[1].codes("banner") == [554], "\(sessions[1])")
        #expect(sessions[1].codes("auth") == [503], "\(sessions[1])")
        #expect(sessions[2].first("ehlo")?.text.contains("AUTH PLAIN LOGIN") == true, "\(sessions[2])")
        #expect(sessions[2].codes("auth") == [235], "\(sessions[2])")
        #expect(sessions[2].codes("MAIL") == [550], "erp's rules after AUTH: \(sessions[2])")
        #expect(sessions[3].codes("banner") == [220], "\(sessions[3])")
        #expect(sessions[3].codes("MAIL") == [530, 250], "\(sessions[3])")
        #expect(sessions[3].codes("data") == [250], "\(sessions[3])")
        try await relay.stop()
    }

    // MARK: Networks

    @Test func aPasswordClientWithNetworksIsRefusedFromElsewhere() async throws {
        // Only erp could authenticate, and only from 127.0.0.2: 127.0.0.3 is nobody.
        let (restricted, caFile) = try await Self.relay(clients: Self.standardClients(erpNetworks: "[\"127.0.0.2/32\"]"))
        let refused = try await SMTPDialogue.run([
            SMTPDialogue(from: "127.0.0.3", port: restricted.port, [["ehlo"], ["starttls"], ["auth_plain", "erp", Self.password]]),
            SMTPDialogue(from: "127.0.0.2", port: restricted.port, [["ehlo"], ["starttls"], ["ehlo"], ["auth_plain", "erp", Self.password]]),
        ], caFile: caFile)
        #expect(refused.first?.codes("banner") == [554], "\(refused)")
        #expect(refused.first?.first("banner")?.text.contains("5.7.1") == true, "\(refused)")
        #expect(refused.first?.codes("auth") == [503], "\(refused)")
        #expect(refused.last?.codes("auth") == [235], "\(refused)")

        // With a client that may log in from anywhere, 127.0.0.3 may connect, but not as erp.
        let (open, openCA) = try await Self.relay(clients: Self.standardClients(erpNetworks: "[\"127.0.0.2/32\"]", extra: """
              - name: roaming
                auth: password
                username: roaming
                password_hash_file: \(restricted.directory.file("erp.hash"))
                route: sandbox
            """))
        let replies = try await SMTPDialogue.run(SMTPDialogue(from: "127.0.0.3", port: open.port, [
            ["ehlo"], ["starttls"], ["ehlo"], ["auth_plain", "erp", Self.password], ["auth_plain", "roaming", Self.password],
        ]), caFile: openCA)
        #expect(replies.codes("banner") == [220], "\(replies)")
        #expect(replies.codes("auth") == [535, 235], "\(replies)")
        try await restricted.stop()
        try await open.stop()
    }

    // MARK: Rate limit

    @Test func aClientsMessageRateIsLimitedAcrossConnections() async throws {
        let (relay, _) = try await Self.relay(listeners: ["tls: none"], clients: { _ in
            """
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                rate_limit: 2/h
                route: sandbox
            """
        })
        // Per hour: a loaded machine's slow dialogue must not refill a token (2/min did once, after 30 s).
        let sessions = try await SMTPDialogue.run([
            SMTPDialogue(port: relay.port, [["ehlo"]] + Self.mailSteps() + Self.mailSteps() + [["cmd", "MAIL FROM:<erp@contoso.com>"]]),
            SMTPDialogue(port: relay.port, [["ehlo"], ["cmd", "MAIL FROM:<erp@contoso.com>"]]),
        ])
        try #require(sessions.count == 2)
        #expect(sessions[0].codes("data") == [250, 250], "\(sessions[0])")
        #expect(sessions[0].codes("MAIL") == [250, 250, 450], "\(sessions[0])")
        let limited = try #require(sessions[0].filter { $0.step == "MAIL" }.last)
        #expect(limited.text.contains("4.7.1") && limited.text.contains("2/h"), "\(limited)")
        #expect(sessions[1].codes("MAIL") == [450], "a reconnect does not reset the rate: \(sessions[1])")
        try await relay.stop()
    }

    // MARK: XCLIENT and PROXY

    @Test func xclientAndProxyAreUnknownCommandsFromAnyPeer() async throws {
        let (relay, _) = try await Self.relay(listeners: ["tls: none"], clients: { _ in
            """
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                allowed_senders: ["scanner@contoso.com"]
                route: sandbox
            """
        })
        let sessions = try await SMTPDialogue.run([
            // An allowed peer cannot claim another address or name.
            SMTPDialogue(port: relay.port, [
                ["ehlo"], ["cmd", "XCLIENT ADDR=10.9.9.9 NAME=ceo.contoso.com LOGIN=erp"], ["cmd", "PROXY TCP4 10.9.9.9 127.0.0.1 5000 25"],
                ["ehlo"], ["cmd", "MAIL FROM:<ceo@contoso.com>"], ["cmd", "MAIL FROM:<scanner@contoso.com>"], ["cmd", "RCPT TO:<someone@contoso.com>"],
                ["data", "From: scanner@contoso.com\r\nTo: someone@contoso.com\r\nSubject: scan\r\n\r\nhello\r\n"],
            ]),
            // A peer outside the allowlist cannot talk its way in.
            SMTPDialogue(from: "127.0.0.3", port: relay.port, [
                ["cmd", "PROXY TCP4 127.0.0.1 127.0.0.1 5000 25"], ["cmd", "XCLIENT ADDR=127.0.0.1"], ["ehlo"], ["cmd", "MAIL FROM:<scanner@contoso.com>"],
            ]),
        ])
        try #require(sessions.count == 2)
        let allowed = sessions[0]
        #expect(allowed.first("ehlo")?.text.contains("XCLIENT") == false, "\(allowed)")
        #expect(allowed.codes("XCLIENT").allSatisfy { (500...502).contains($0) } && allowed.codes("XCLIENT").count == 1, "\(allowed)")
        #expect(allowed.codes("PROXY").allSatisfy { (500...502).contains($0) } && allowed.codes("PROXY").count == 1, "\(allowed)")
        #expect(allowed.codes("MAIL") == [550, 250], "the sender rules did not change: \(allowed)")
        #expect(allowed.codes("data") == [250], "\(allowed)")

        let outsider = sessions[1]
        #expect(outsider.codes("banner") == [554], "\(outsider)")
        #expect(outsider.codes("PROXY") == [503] && outsider.codes("XCLIENT") == [503], "\(outsider)")
        #expect(outsider.codes("ehlo") == [503] && outsider.codes("MAIL") == [503], "\(outsider)")

        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        let received = splitReceived(try store.content(of: try #require(try store.messages().first))).received
        #expect(received.contains("[127.0.0.1]") && !received.contains("10.9.9.9"), "\(received)")
        try await relay.stop()
    }

    // MARK: hash-password

    @Test func hashPasswordPrintsAHashTheRelayAndPythonAccept() async throws {
        let binary = try RelayCommandProcess.binary()
        let secret = "correct horse battery staple ünïcode"
        let result = try await ExternalProcess.run(binary, ["hash-password"], stdin: secret + "\n", timeout: 60)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "one line: \(result.stdout)")
        let phc = String(lines[0])
        #expect(phc.hasPrefix("$scrypt$ln=15,r=8,p=1$"), "\(phc)")
        let parsed = try RelayPasswordHash(parsing: phc)
        #expect(parsed.salt.count == 16 && parsed.hash.count == 32)

        // The newline was not hashed; Python's scrypt agrees independently.
        let script = """
        import base64, hashlib, sys
        _, _, params, salt, digest = sys.argv[1].split("$")
        p = dict(kv.split("=") for kv in params.split(","))
        pad = lambda s: s + "=" * (-len(s) % 4)
        got = hashlib.scrypt(sys.argv[2].encode(), salt=base64.b64decode(pad(salt)), n=1 << int(p["ln"]), r=int(p["r"]), p=int(p["p"]), dklen=32, maxmem=128 * 1024 * 1024)
        print("match" if got == base64.b64decode(pad(digest)) else "mismatch")
        """
        for (candidate, expected) in [(secret, "match"), (secret + "\n", "mismatch")] {
            let check = try await ExternalProcess.python(script, [phc, candidate])
            #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "\(candidate.debugDescription): \(check.stdout) \(check.stderr)")
        }

        // A second run salts differently.
        let again = try await ExternalProcess.run(binary, ["hash-password"], stdin: secret + "\n", timeout: 60)
        #expect(again.status == 0 && again.stdout != result.stdout)

        // And the relay takes it as a password_hash_file.
        let (relay, caFile) = try await Self.relay(clients: Self.standardClients(), hash: phc)
        let replies = try await SMTPDialogue.run(SMTPDialogue(from: "127.0.0.2", port: relay.port, [
            ["ehlo"], ["starttls"], ["ehlo"], ["auth_login", "erp", secret + "\n"], ["auth_login", "erp", secret],
        ]), caFile: caFile)
        #expect(replies.codes("auth") == [535, 235], "\(replies)")
        try await relay.stop()
    }

    @Test(arguments: ["", "\n", "\r\n"])
    func hashPasswordRefusesAnEmptyPassword(input: String) async throws {
        let result = try await ExternalProcess.run(try RelayCommandProcess.binary(), ["hash-password"], stdin: input, timeout: 60)
        #expect(result.status == 2, "status \(result.status), stdout \(result.stdout)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("no password"), "stderr: \(result.stderr)")
    }
}

@Suite("End to end: the session audit line")
struct SessionAuditLogTests {
    @Test func oneEscapedLinePerSessionWithoutSecrets() async throws {
        let directory = TemporaryDirectory("audit-log")
        let hash = try RelayPasswordHash.make(password: Array("right".utf8), parameters: .init(logN: 10, blockSize: 8, parallelism: 1))
        let hashFile = try directory.write("erp.hash", hash.encoded + "\n")
        let port = freeLoopbackPort()
        let config = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(port)"
                  tls: none
                  allow_plaintext_auth: true
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                route: sandbox
              - name: erp
                auth: password
                username: erp
                password_hash_file: \(hashFile)
                route: sandbox
            routes:
              - name: sandbox
                mode: sandbox
            """)
        let relay = try RelayCommandProcess(["serve", "--config", config], workingDirectory: directory.path)
        #expect(await eventually(timeout: 60) { relay.stderr.contains("m365-relay started") || !relay.isRunning }, "\(relay.stderr)")
        try #require(relay.isRunning, "\(relay.stderr)")

        let secret = "hunter2-\(UUID().uuidString)"
        let forged = "evil\r\nSession ended client=ceo\u{1B}[31m"
        let replies = try await SMTPDialogue.run(SMTPDialogue(port: port, [
            ["ehlo"], ["auth_plain", forged, secret],
            ["cmd", "MAIL FROM:<a@contoso.com>"], ["cmd", "RCPT TO:<b@contoso.com>"], ["data", "Subject: x\r\nFrom: a@contoso.com\r\n\r\nx\r\n"],
            ["auth_plain", "erp", "right"],
        ]))
        #expect(replies.codes("auth") == [535, 235], "\(replies)")
        #expect(replies.codes("data") == [250], "\(replies)")

        // The message is last on a line; the forged username must not make a line of its own.
        let sessionLines = { (log: String) in log.split(separator: "\n").filter { $0.hasSuffix("Session ended") } }
        #expect(await eventually(timeout: 60) { !sessionLines(relay.stderr).isEmpty }, "\(relay.stderr)")
        let log = relay.stderr
        #expect(await relay.terminate() == 0)
        let lines = sessionLines(log)
        #expect(lines.count == 1, "one line per session: \(lines)")
        let line = String(lines.first ?? "")
        for field in ["client=erp", "client_ip=127.0.0.1", "messages_accepted=1", "auth_failures=1", "auth_identity=erp", "helo=client.test", "tls=none"] {
            #expect(line.contains(field), "missing \(field) in \(line)")
        }
        // The forged username is logged escaped, on the AUTH failure line; no secret anywhere.
        #expect(log.contains("evil\\r\\nSession ended client=ceo\\x1B[31m"), "\(log)")
        #expect(!log.contains("\u{1B}"), "a raw escape reached the log")
        #expect(!log.contains(secret), "the password reached the log")
        let payload = Data("\0\(forged)\0\(secret)".utf8).base64EncodedString()
        #expect(!log.contains(payload) && !log.contains(String(payload.prefix(16))), "the AUTH payload reached the log")
    }
}
