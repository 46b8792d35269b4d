import Foundation

/// Verifies a message's DKIM signatures with an independent implementation:
/// dkimpy (PyPI `dkimpy`, with PyNaCl for Ed25519), asking for each public
/// key a DNS server on a loopback UDP port (dnslib) that serves the given
/// TXT records, through dnspython, exactly as a receiving MTA would.
///
/// scripts/test.sh installs the Python packages.
public struct DKIMVerification: Sendable {
    public struct Signature: Sendable {
        public var verified: Bool
        public var domain: String
        public var selector: String
        public var algorithm: String
        /// dkimpy's reason when it refused the signature (or threw).
        public var error: String?
    }

    public var signatures: [Signature]
    /// The names the verifier looked up in DNS.
    public var queries: [String]
    /// dkimpy's debug log, for failure messages.
    public var log: String

    /// True when there is at least one signature and every one verifies.
    public var allVerified: Bool { !signatures.isEmpty && signatures.allSatisfy(\.verified) }

    /// Runs the verifier on `message` with `records` (`selector._domainkey.domain` -> TXT text) in DNS.
    public static func verify(_ message: [UInt8], records: [String: String], timeout: TimeInterval = 60) async throws -> DKIMVerification {
        let directory = TemporaryDirectory("dkim-verify")
        let file = directory.file("message.eml")
        try Data(message).write(to: URL(fileURLWithPath: file))
        let arguments = try JSONSerialization.data(withJSONObject: ["file": file, "records": records])
        let result = try await ExternalProcess.python(script, [String(decoding: arguments, as: UTF8.self)], timeout: timeout)
        guard result.status == 0, let line = result.stdout.split(separator: "\n").last,
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw VerifierFailed(description: "the DKIM verifier did not run (status \(result.status)): \(result.stderr.suffix(2000))")
        }
        let signatures = (object["results"] as? [[String: Any]] ?? []).map {
            Signature(
                verified: $0["ok"] as? Bool ?? false, domain: $0["d"] as? String ?? "", selector: $0["s"] as? String ?? "",
                algorithm: $0["a"] as? String ?? "", error: $0["error"] as? String)
        }
        return DKIMVerification(signatures: signatures, queries: object["queries"] as? [String] ?? [], log: object["log"] as? String ?? "")
    }

    public struct VerifierFailed: Error, CustomStringConvertible {
        public var description: String
    }

    static let script = """
    import io, json, logging, sys
    import dkim
    import dns.resolver
    from dnslib import RR, QTYPE, RCODE, TXT
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    args = json.loads(sys.argv[1])
    records = {name.lower().rstrip(".") + ".": text for name, text in args["records"].items()}

    class Records(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).lower()
            if name in records:
                if request.q.qtype == QTYPE.TXT:
                    value = records[name].encode()
                    # A TXT string holds at most 255 octets; a 2048-bit key needs several (RFC 6376 §3.6.2.2).
                    reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT([value[i:i + 255] for i in range(0, len(value), 255)]), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    server = DNSServer(Records(), address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda _: None))
    server.start_thread()
    port = server.server.server_address[1]

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    queries = []

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        queries.append(name)
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)

    log = io.StringIO()
    logger = logging.getLogger("dkim-verify")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logging.StreamHandler(log))

    with open(args["file"], "rb") as f:
        message = f.read()
    verifier = dkim.DKIM(message, logger=logger)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        result = {"ok": False}
        try:
            result["ok"] = bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException as error:
            result["error"] = str(error)
        fields = getattr(verifier, "signature_fields", None) or {}
        for tag in ("d", "s", "a"):
            result[tag] = fields.get(tag.encode(), b"").decode()
        results.append(result)
    server.stop()
    print(json.dumps({"results": results, "queries": queries, "log": log.getvalue()[-4000:]}))
    """
}
