import ArgumentParser
import Foundation
import RelayCore
import RelayDoctor

/// `doctor`: the implementation checklist (or, with `--audit`, the settings
/// review), one row per step. Exit 0 when no row failed, 1 otherwise, 2 on a usage error.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Prove each step of the implementation checklist: configuration, DNS, connectivity, authentication, the connector, a test message, this host.")

    @OptionGroup var access: RelayAccessOptions

    @Option(name: .customLong("domain"), help: "A sender domain to check in DNS (repeatable). Default: the domains the configuration sends from.")
    var domains: [String] = []

    @Option(help: "The DNS server to ask, as HOST:PORT (overrides dns.server). Default: the system resolver.")
    var dnsServer: String?

    @Option(help: "Send one real test message to this address through the route.")
    var sendTest: String?

    @Option(help: "The route of the test message. Default: the first client's route.")
    var route: String?

    @Option(help: "Seconds to wait for one connection, reply or HTTP request.")
    var timeout: Double = 10

    @Flag(help: "Print the rows as a JSON array (keys step, action, verification, result, hint).")
    var json = false

    @Flag(help: "Review the settings as a compliance audit would, instead of the checklist.")
    var audit = false

    @Option(help: "With --audit: the widest IPv4 client network accepted, as a prefix length (default 16: nothing wider than a /16).")
    var widestNetwork: Int?

    func validate() throws {
        if let dnsServer, RelayEndpoint(parsing: dnsServer) == nil {
            throw ValidationError("--dns-server must be HOST:PORT, got \(dnsServer)")
        }
        if let sendTest, !sendTest.contains("@") || sendTest.hasPrefix("@") || sendTest.hasSuffix("@") {
            throw ValidationError("--send-test must be an email address, got \(sendTest)")
        }
        for domain in domains where domain.isEmpty || domain.contains("@") || domain.contains(" ") {
            throw ValidationError("--domain must be a domain name such as contoso.com, got \(domain)")
        }
        if let widestNetwork, !(0...32).contains(widestNetwork) {
            throw ValidationError("--widest-network must be an IPv4 prefix length from 0 to 32, got \(widestNetwork)")
        }
        if !(timeout > 0 && timeout <= 300) {
            throw ValidationError("--timeout must be between 0 and 300 seconds")
        }
    }

    func run() async throws {
        var options: RelayDoctor.Options
        if let path = access.configurationFile {
            // The doctor reports an invalid file as its first row instead of stopping.
            options = RelayDoctor.Options(configurationFile: path)
        } else {
            options = RelayDoctor.Options(configuration: .success(.builtInSandbox(dataDirectory: access.dataDirectory)), configurationPath: nil)
        }
        options.domains = domains.map { $0.lowercased() }
        options.dnsServer = dnsServer.flatMap(RelayEndpoint.init(parsing:))
        options.sendTest = sendTest
        options.route = route
        options.audit = audit
        if let widestNetwork { options.widestIPv4Prefix = widestNetwork }
        options.timeout = timeout
        let rows = await RelayDoctor().run(options)
        let output = json
            ? RelayDoctorReport.json(rows)
            : RelayDoctorReport.table(rows, width: RelayDoctorReport.standardOutputWidth, colour: RelayDoctorReport.colourStandardOutput)
        FileHandle.standardOutput.write(Data(output.utf8))
        let status = RelayDoctor.exitStatus(of: rows)
        if status != 0 { throw ExitCode(status) }
    }
}
