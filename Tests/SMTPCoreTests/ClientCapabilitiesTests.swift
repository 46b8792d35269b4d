import SMTPCore
import Testing

@Suite("EHLO capabilities")
struct ClientCapabilitiesTests {
    @Test func m365BeforeSTARTTLS() {
        let capabilities = SMTPCapabilities(ehloReply: reply(m365EHLOBeforeTLS))
        #expect(capabilities.serverName == "SN4PR0401CA0001.outlook.office365.com")
        #expect(capabilities.size)
        #expect(capabilities.sizeLimit == 157_286_400)
        #expect(capabilities.pipelining)
        #expect(capabilities.dsn)
        #expect(capabilities.enhancedStatusCodes)
        #expect(capabilities.startTLS)
        #expect(capabilities.eightBitMIME)
        #expect(capabilities.binaryMIME)
        #expect(capabilities.chunking)
        #expect(capabilities.smtpUTF8)
        #expect(capabilities.authenticationMechanisms.isEmpty)
        #expect(!capabilities.supports("AUTH"))
    }

    @Test func m365AfterSTARTTLS() {
        let capabilities = SMTPCapabilities(ehloReply: reply(m365EHLOAfterTLS))
        #expect(!capabilities.startTLS)
        #expect(capabilities.authenticationMechanisms == ["LOGIN", "XOAUTH2"])
        #expect(capabilities.supportsAuthentication("xoauth2"))
        #expect(capabilities.supportsAuthentication("LOGIN"))
        #expect(!capabilities.supportsAuthentication("PLAIN"))
    }

    @Test func keywordsAreCaseInsensitive() {
        let capabilities = SMTPCapabilities(ehloReply: reply(crlf("""
            250-mx.example.org greets you
            250-pipelining
            250-StartTLS
            250-size 1000
            250-auth plain Login
            250 smtputf8

            """)))
        #expect(capabilities.pipelining)
        #expect(capabilities.startTLS)
        #expect(capabilities.sizeLimit == 1000)
        #expect(capabilities.authenticationMechanisms == ["PLAIN", "LOGIN"])
        #expect(capabilities.smtpUTF8)
        #expect(capabilities.supports("Pipelining"))
        #expect(!capabilities.chunking)
    }

    @Test func legacyAuthEqualsForm() {
        // Old Exchange and Sendmail list both forms; mechanisms are merged without duplicates.
        let capabilities = SMTPCapabilities(ehloReply: reply(crlf("""
            250-old.example.net
            250-AUTH=LOGIN
            250 AUTH LOGIN PLAIN CRAM-MD5

            """)))
        #expect(capabilities.authenticationMechanisms == ["LOGIN", "PLAIN", "CRAM-MD5"])
    }

    @Test func legacyAuthEqualsFormAlone() {
        let capabilities = SMTPCapabilities(ehloReply: reply("250-old.example.net\r\n250 AUTH=LOGIN PLAIN\r\n"))
        #expect(capabilities.authenticationMechanisms == ["LOGIN", "PLAIN"])
    }

    /// RFC 1870 §4: `SIZE 0` or no number means no fixed limit.
    @Test(arguments: [
        ("250-x\r\n250 SIZE 35882577\r\n", true, 35_882_577 as Int?),
        ("250-x\r\n250 SIZE\r\n", true, nil),
        ("250-x\r\n250 SIZE 0\r\n", true, nil),
        ("250-x\r\n250 SIZE lots\r\n", true, nil),
        ("250 x\r\n", false, nil),
    ])
    func sizeLimit(_ wire: String, _ offered: Bool, _ limit: Int?) {
        let capabilities = SMTPCapabilities(ehloReply: reply(wire))
        #expect(capabilities.size == offered)
        #expect(capabilities.sizeLimit == limit)
    }

    @Test func heloFallbackHasNoExtensions() {
        let capabilities = SMTPCapabilities()
        #expect(!capabilities.pipelining)
        #expect(!capabilities.startTLS)
        #expect(capabilities.sizeLimit == nil)
        #expect(capabilities.authenticationMechanisms.isEmpty)
    }

    @Test func singleLineEHLOHasNoExtensions() {
        let capabilities = SMTPCapabilities(ehloReply: reply("250 tiny.example Hello\r\n"))
        #expect(capabilities.serverName == "tiny.example")
        #expect(capabilities.extensions.isEmpty)
    }
}
