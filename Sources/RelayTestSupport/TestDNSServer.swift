import Foundation

/// A real DNS server for tests: python3's dnslib on 127.0.0.1, one free port,
/// answering over UDP and TCP from a zone written in master-file syntax, e.g.
///
///     contoso.com. 300 IN MX 0 contoso-com.mail.protection.outlook.com.
///     contoso.com. 300 IN TXT "v=spf1 include:spf.protection.outlook.com" " -all"
///     www.contoso.com. 300 IN CNAME contoso.com.
///
/// Names not in the zone get NXDOMAIN; a name in the zone asked for a type it
/// does not have gets NOERROR with no records (NODATA). A question for another
/// type on a name that has a CNAME gets the CNAME and the target's records, as a
/// recursive resolver answers. A quoted string longer than 255 octets is split
/// into 255-octet character-strings (how long DKIM keys are published).
/// Over UDP an answer larger than 512 octets is truncated (TC set, no records),
/// so the client must ask again over TCP.
///
/// scripts/test.sh installs dnslib; without it ``start(zone:servfail:truncatedOverUDP:)``
/// throws an error saying so.
public struct TestDNSServer: Sendable {
    /// The UDP and TCP port on 127.0.0.1.
    public let port: Int
    public let host = "127.0.0.1"
    private let process: ServerProcess

    /// Starts the server; it answers as soon as this returns.
    /// - Parameters:
    ///   - zone: The records, in master-file syntax (`$ORIGIN` and `$TTL` work; names should end with a dot).
    ///   - servfail: Names (without the trailing dot) answered with SERVFAIL, whatever the type.
    ///   - truncatedOverUDP: Names whose UDP answer is always truncated (TC set, no records), however small;
    ///     over TCP they get their full answer.
    public static func start(zone: String, servfail: [String] = [], truncatedOverUDP: [String] = [], timeout: TimeInterval = 60) async throws -> TestDNSServer {
        let directory = TemporaryDirectory("test-dns")
        let zoneFile = try directory.write("zone", zone)
        let logFile = directory.file("queries")
        let outPath = directory.file("stdout"), errPath = directory.file("stderr")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let arguments = try JSONSerialization.data(withJSONObject: [
            "zone": zoneFile, "log": logFile,
            "servfail": servfail.map(normalised), "truncate": truncatedOverUDP.map(normalised),
        ])

        // Output goes to files, polled below, so that waiting for "ready" blocks no thread.
        let output = open(outPath, O_WRONLY | O_CLOEXEC)
        let errors = open(errPath, O_WRONLY | O_CLOEXEC)
        defer { for descriptor in [output, errors] where descriptor >= 0 { close(descriptor) } }
        // The server exits when this pipe reaches end of file: when stop() closes it, or when this process dies.
        var input: [Int32] = [-1, -1]
        guard output >= 0, errors >= 0, pipe(&input) == 0 else {
            throw StartFailed(description: "the test DNS server: cannot open its output files or its input pipe")
        }
        for descriptor in input { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        // posix_spawn, not Foundation's Process (see SpawnedProcess).
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess(
                ExternalProcess.python, ["-c", script, String(decoding: arguments, as: UTF8.self)], stdin: input[0], stdout: output, stderr: errors)
        } catch {
            close(input[0])
            close(input[1])
            throw error
        }
        close(input[0])
        let server = ServerProcess(process: process, input: input[1], directory: directory, logFile: logFile)

        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }), let port = Int(line.dropFirst(6)) {
                return TestDNSServer(port: port, process: server)
            }
            if !process.isRunning {
                let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
                if err.contains("No module named 'dnslib'") {
                    throw StartFailed(description: "the test DNS server needs python3's dnslib, which is missing: run scripts/test.sh (or `python3 -m pip install dnslib`)")
                }
                throw StartFailed(description: "the test DNS server exited with status \(process.exitStatus ?? -1): \(err.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        server.stop()
        throw StartFailed(description: "the test DNS server did not say ready within \(Int(timeout)) s")
    }

    /// Stops the server (it also stops when the last copy of this value goes away).
    public func stop() { process.stop() }

    /// The questions the server received, in order: transport, name (lower-case, no trailing dot), type.
    public func queries() -> [(transport: String, name: String, type: String)] {
        let text = (try? String(contentsOfFile: process.logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3 else { return nil }
            return (String(fields[0]), String(fields[1]), String(fields[2]))
        }
    }

    public struct StartFailed: Error, CustomStringConvertible {
        public var description: String
    }

    private static func normalised(_ name: String) -> String {
        var name = name.lowercased()
        if !name.hasSuffix(".") { name += "." }
        return name
    }

    private final class ServerProcess: @unchecked Sendable {
        let process: SpawnedProcess
        /// The write end of the server's stdin.
        let input: Int32
        let directory: TemporaryDirectory
        let logFile: String
        private let lock = NSLock()
        private var stopped = false

        init(process: SpawnedProcess, input: Int32, directory: TemporaryDirectory, logFile: String) {
            self.process = process
            self.input = input
            self.directory = directory
            self.logFile = logFile
        }

        func stop() {
            lock.lock()
            defer { lock.unlock() }
            guard !stopped else { return }
            stopped = true
            close(input)
            process.signal(SIGKILL)
        }

        deinit { stop() }
    }

    static let script = #"""
    import json, os, socket, socketserver, sys, threading, time
    try:
        from dnslib import RR, QTYPE, RCODE, TXT, DNSLabel
        from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer
    except ImportError as error:
        sys.stderr.write("No module named 'dnslib' (%s)\n" % error)
        sys.exit(3)

    args = json.loads(sys.argv[1])
    with open(args["zone"]) as f:
        zone_text = f.read()
    servfail = set(args["servfail"])
    truncate = set(args["truncate"])
    log = open(args["log"], "a")
    log_lock = threading.Lock()

    def txt_from_zone(cls, strings, origin=None):
        # A character-string holds at most 255 octets: split longer ones, as long DKIM keys are published (RFC 6376 §3.6.2.2).
        pieces = []
        for text in strings:
            data = text.encode()
            pieces.extend(data[i:i + 255] for i in range(0, max(len(data), 1), 255))
        return cls(pieces)
    TXT.fromZone = classmethod(txt_from_zone)

    zone = {}
    for rr in RR.fromZone(zone_text):
        zone.setdefault(str(rr.rname).lower(), []).append(rr)

    class Zone(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            qname = str(request.q.qname).lower()
            qtype = request.q.qtype
            with log_lock:
                log.write("%s %s %s\n" % (handler.protocol, qname.rstrip(".") or ".", QTYPE.get(qtype, str(qtype))))
                log.flush()
            if qname in servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if qname not in zone:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            name = qname
            for _ in range(8):
                records = zone.get(name, [])
                cnames = [rr for rr in records if rr.rtype == QTYPE.CNAME]
                if cnames and qtype != QTYPE.CNAME:
                    reply.add_answer(cnames[0])
                    name = str(cnames[0].rdata.label).lower()
                    continue
                for rr in records:
                    if rr.rtype == qtype:
                        reply.add_answer(rr)
                break
            if handler.protocol == "udp" and (qname in truncate or len(reply.pack()) > 512):
                # Like a real server (and unlike dnslib's truncate()), keep the question; drop the records.
                truncated = request.reply()
                truncated.header.tc = 1
                return truncated
            return reply

    class UDP(socketserver.ThreadingMixIn, socketserver.UDPServer):
        daemon_threads = True
        allow_reuse_address = False

    class TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = False

    quiet = DNSLogger(logf=lambda _: None)
    for attempt in range(50):
        udp = DNSServer(Zone(), address="127.0.0.1", port=0, server=UDP, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(Zone(), address="127.0.0.1", port=port, server=TCP, logger=quiet)
            break
        except OSError:
            udp.server.server_close()
    else:
        sys.exit("no port free for both UDP and TCP")
    udp.start_thread()
    tcp.start_thread()

    parent = os.getppid()
    def watch_parent():
        # Exit with the test process even if stdin stays open (another child holding the pipe).
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch_parent, daemon=True).start()

    print("ready %d" % port, flush=True)
    sys.stdin.read()
    os._exit(0)
    """#
}
