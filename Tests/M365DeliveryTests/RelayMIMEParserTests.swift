import Foundation
import Testing
import RelayCore

struct RelayMIMEParserTests {
    static let multipart = """
    From: Sender <s@x.test>\r
    To: a@x.test\r
    Subject: =?utf-8?B?UmVwb3J0IOKCrA==?=\r
    MIME-Version: 1.0\r
    Content-Type: multipart/mixed;\r
     boundary="outer"\r
    \r
    preamble\r
    --outer\r
    Content-Type: multipart/alternative; boundary=inner\r
    \r
    --inner\r
    Content-Type: text/plain; charset=utf-8\r
    Content-Transfer-Encoding: quoted-printable\r
    \r
    Caf=C3=A9 soft=\r
    break\r
    --inner\r
    Content-Type: text/html; charset="utf-8"\r
    \r
    <p>Café</p>\r
    --inner--\r
    --outer\r
    Content-Type: application/pdf; name="ignored.pdf"\r
    Content-Disposition: attachment; filename="report.pdf"\r
    Content-Transfer-Encoding: base64\r
    \r
    JVBERi0x\r
    LjQK\r
    --outer\r
    Content-Type: image/png\r
    Content-Disposition: inline; filename*=utf-8''%E2%82%AC%20logo.png\r
    Content-ID: <logo@x.test>\r
    Content-Transfer-Encoding: base64\r
    \r
    iVBORw==\r
    --outer--\r
    epilogue\r

    """

    @Test func parsesTheTree() {
        let root = RelayMIMEParser.parse(Array(Self.multipart.utf8))
        #expect(root.contentType.value == "multipart/mixed")
        #expect(root.contentType.parameters["boundary"] == "outer")
        #expect(root.parts.count == 3)
        #expect(root.parts[0].parts.count == 2)
        let plain = root.parts[0].parts[0]
        // A soft line break joins the lines with nothing between them.
        #expect(plain.text == "Café softbreak")
        #expect(root.parts[0].parts[1].text == "<p>Café</p>")
        let pdf = root.parts[1]
        #expect(pdf.isAttachment)
        #expect(pdf.filename == "report.pdf")
        #expect(pdf.decodedBody == Array("%PDF-1.4\n".utf8))
        let logo = root.parts[2]
        #expect(logo.filename == "€ logo.png")
        #expect(logo.isInline)
        #expect(logo.contentID == "logo@x.test")
        #expect(logo.decodedBody == [0x89, 0x50, 0x4E, 0x47])
        #expect(RelayEncodedWords.decode(root.headers.value("Subject") ?? "") == "Report €")
        #expect(root.leaves.count == 4)
    }

    @Test func singlePartDefaultsToTextPlain() {
        let root = RelayMIMEParser.parse(Array("Subject: x\r\n\r\nhello\r\n".utf8))
        #expect(root.contentType.value == "text/plain")
        #expect(root.parts.isEmpty)
        #expect(root.text == "hello\r\n")
        #expect(!root.isAttachment)
    }

    @Test func missingClosingBoundaryEndsAtTheEnd() {
        let text = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo"
        let root = RelayMIMEParser.parse(Array(text.utf8))
        #expect(root.parts.map { String(decoding: $0.body, as: UTF8.self) } == ["one", "two"])
    }

    @Test func boundaryMustStartALine() {
        let text = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsee --b here\r\n--bx not a boundary\r\n--b--\r\n"
        let root = RelayMIMEParser.parse(Array(text.utf8))
        #expect(root.parts.count == 1)
        #expect(String(decoding: root.parts[0].body, as: UTF8.self) == "see --b here\r\n--bx not a boundary")
    }

    struct ParameterCase: Sendable, CustomTestStringConvertible {
        var header: String
        var value: String
        var parameters: [String: String]
        var testDescription: String { header }
    }

    static let parameterCases: [ParameterCase] = [
        ParameterCase(header: "text/plain", value: "text/plain", parameters: [:]),
        ParameterCase(header: "Text/HTML; Charset=\"UTF-8\"", value: "text/html", parameters: ["charset": "UTF-8"]),
        ParameterCase(header: "attachment; filename=\"a;b.txt\"; size=12", value: "attachment", parameters: ["filename": "a;b.txt", "size": "12"]),
        ParameterCase(header: "attachment; filename*0=\"long\"; filename*1=\"name.txt\"", value: "attachment", parameters: ["filename": "longname.txt"]),
        ParameterCase(header: "attachment; filename*0*=utf-8''%C3%A9t%C3%A9; filename*1=\".txt\"", value: "attachment", parameters: ["filename": "été.txt"]),
        ParameterCase(header: "attachment; filename=\"old.txt\"; filename*=iso-8859-1'fr'%E9t%E9.txt", value: "attachment", parameters: ["filename": "été.txt"]),
        ParameterCase(header: "multipart/mixed; (comment) boundary=abc", value: "multipart/mixed", parameters: ["boundary": "abc"]),
    ]

    @Test(arguments: parameterCases)
    func headerParameters(_ test: ParameterCase) {
        let parsed = RelayMIMEHeaderValue.parse(test.header)
        #expect(parsed.value == test.value)
        #expect(parsed.parameters == test.parameters)
    }

    @Test(arguments: [
        ("=?utf-8?Q?Caf=C3=A9_au_lait?=", "Café au lait"),
        ("=?iso-8859-1?q?=E9t=E9?= =?utf-8?b?4oKs?=", "été€"),
        ("plain text", "plain text"),
        ("pre =?utf-8?B?w6k=?= post", "pre é post"),
        ("=?unknown?Q?x?=", "=?unknown?Q?x?="),
    ])
    func encodedWords(_ input: String, _ expected: String) {
        #expect(RelayEncodedWords.decode(input) == expected)
    }

    @Test func transferEncodings() {
        #expect(RelayTransferEncoding.decodeBase64(Array("aGVs\r\nbG8=".utf8)) == Array("hello".utf8))
        #expect(RelayTransferEncoding.decodeBase64(Array("aGVsbG8".utf8)) == Array("hello".utf8))
        #expect(RelayTransferEncoding.decodeQuotedPrintable(Array("a=3Db=\r\nc=\nd =".utf8)) == Array("a=bcd ".utf8))
    }
}
