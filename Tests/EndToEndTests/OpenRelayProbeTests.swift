import Foundation
import RelayTestSupport
import Testing

/// The classic open-relay probes, each as one RCPT; prints the reply code of every one.
private let probeScript = """
import smtplib, sys, json
source, port, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3]
probes = json.loads(sys.argv[4])
codes = {}
try:
    s = smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=60)
    s.ehlo("probe.test")
    code, _ = s.mail(sender)
    codes["MAIL"] = code
    for probe in probes:
        code, _ = s.docmd("RCPT TO:" + probe)
        codes[probe] = code
    code, _ = s.docmd("DATA")
    codes["DATA"] = code
    s.close()
except smtplib.SMTPServerDisconnected:
    codes["disconnected"] = True
except smtplib.SMTPConnectError as e:
    codes["connect"] = e.smtp_code
print(json.dumps(codes))
"""

@Suite("Open-relay probes relay nothing")
struct OpenRelayProbeTests {
    static let probes = [
        "<user%elsewhere.test@contoso.com>",          // percent hack
        "<elsewhere.test!user@contoso.com>",          // bang path behind an allowed domain
        "<elsewhere.test!user>",                      // bare bang path
        "<@contoso.com:user@elsewhere.test>",         // source route
        "<\"user@elsewhere.test\"@contoso.com>",      // quoted local part hiding a domain
        "<\"user%elsewhere.test\"@contoso.com>",      // quoted percent hack
        "<user@[192.0.2.1]>",                         // address literal
        "<user@[IPv6:2001:db8::1]>",
        "<user@relay.test>",                          // the relay's own name
        "<user@elsewhere.test@contoso.com>",          // two at signs
        "<user@elsewhere.test>",                      // plainly outside the allowed recipients
    ]

    static func probe(_ port: Int, from source: String) async throws -> [String: Any] {
        let arguments = [source, String(port), "scanner@contoso.com", String(decoding: try JSONSerialization.data(withJSONObject: probes), as: UTF8.self)]
        let run = try await ExternalProcess.python(probeScript, arguments, timeout: 120)
        let line = run.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        return (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? ["unparsed": run.stdout + run.stderr]
    }

    @Test("from an allowed client limited to contoso.com, every probe is refused with a 5xx and nothing is queued")
    func probesFromAnAllowedClient() async throws {
        let relay = try await RelayHarness {
            RelayHarness.sandboxYAML($0, networks: "[\"127.0.0.2/32\"]", recipients: "[\"*@contoso.com\"]")
        }
        let codes = try await Self.probe(relay.port, from: "127.0.0.2")
        #expect(codes["MAIL"] as? Int == 250, "\(codes)")
        for probe in Self.probes {
            let code = codes[probe] as? Int ?? 0
            #expect((500..<600).contains(code), "\(probe) got \(code)")
        }
        // No recipient was taken, so there is no transaction to send data in.
        #expect((codes["DATA"] as? Int).map { $0 >= 500 } == true, "\(codes)")
        #expect(try await relay.application.store.counts().values.reduce(0, +) == 0)
        try await relay.stop()
    }

    @Test("from an address outside every client rule, the connection is refused before any probe")
    func probesFromOutside() async throws {
        let relay = try await RelayHarness { RelayHarness.sandboxYAML($0, networks: "[\"127.0.0.2/32\"]") }
        let codes = try await Self.probe(relay.port, from: "127.0.0.3")
        let refusedAtConnect = codes["connect"] as? Int == 554
        let refusedAtMail = (codes["MAIL"] as? Int).map { $0 >= 500 } == true
        #expect(refusedAtConnect || refusedAtMail, "\(codes)")
        for probe in Self.probes {
            if let code = codes[probe] as? Int { #expect(code >= 500, "\(probe) got \(code)") }
        }
        #expect(try await relay.application.store.counts().values.reduce(0, +) == 0)
        try await relay.stop()
    }
}
