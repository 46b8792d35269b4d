import ArgumentParser
import Foundation
import RelayCore
import RelayDoctor

/// `m365-relay connector-script`: the Exchange Online PowerShell for the configuration's routes, on stdout.
struct ConnectorScriptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connector-script",
        abstract: "Print the Exchange Online PowerShell that sets up the tenant side of the routes: inbound connectors, the service principal and mailbox permissions of app-only SMTP, the access policy of a Graph app.",
        discussion: "Exit 1 when no route needs it (sandbox, loopback endpoints, basic authentication or a token you manage).")

    @OptionGroup var access: RelayAccessOptions

    func run() throws {
        let configuration: RelayConfiguration
        do {
            configuration = try access.loadConfiguration()
        } catch {
            FileHandle.standardError.write(Data("m365-relay connector-script: \(error)\n".utf8))
            throw ExitCode(1)
        }
        guard !RelayConnectorScript.routesNeedingSetup(in: configuration).isEmpty else {
            FileHandle.standardError.write(Data("m365-relay connector-script: \(RelayConnectorScript.noSetupReason(in: configuration))\n".utf8))
            throw ExitCode(1)
        }
        let script = RelayConnectorScript.generate(configuration: configuration)
        print(script.text, terminator: "")
        for value in script.valuesToFillIn {
            FileHandle.standardError.write(Data("note: set \(value), at the top of the script, before running it\n".utf8))
        }
    }
}
