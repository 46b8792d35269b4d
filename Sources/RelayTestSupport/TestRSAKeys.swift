/// RSA 2048 test keys (PKCS#8 PEM), made once with `openssl genrsa 2048`.
///
/// Generating RSA keys in a debug build takes seconds of CPU on a thread of
/// the Swift cooperative pool; with two cores and every test running at once
/// that starved the asynchronous tests. These keys protect nothing.
public enum TestRSAKeys {
    /// Distinct keys: a test that needs two different keys takes two indices.
    public static let pem: [String] = [
        """
        -----BEGIN PRIVATE KEY-----
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqgvsQed4BsunP
        DtCJNXUIbMFEBCChTAO0cT5dsftfp1Ifk+rMCCvg0cURivoHCyfH8ZqG78wFBjhZ
        0JhF4cBYSZ3ahEzNutxB9rTm+EArFeAJ6rsr+1Xwne57N0n1Xo1c+JJ9RUg14fLn
        DwnNYyB/+aw81lEVmESlfmPTJT03mpmPnYclqe8Y2SvkNwjPAa/K5sTrbG1fHUwM
        sjblogYpcN5EnA7/IrweGCHRwB4xfkK2+5fJMlWstE5QvXKbZulkCuspUM52YsBk
        SkVl3OeaK1tveLzJfpsJ+RYXx4f65gIP9i2uBBuEyYJ3x2qGt53LQQoWuU09qHlk
        +WNfBe9lAgMBAAECggEAILJDIHKt/pdnPDw0AsuMaJQqLze3Zhakczpv4hmaAUqd
        dc6wbHV4rICtEGMc9LLP6whKQGvFLIV30sksGeJjNsrPCTLrY1vclo2PPOcHrvtf
        3ab0Q0fLv/sY2unMNc/uvZAwzvK1GRf9sw7wK0FB3yhqPbQ/EiwDpdRpofh3F60u
        CPCu77ZJ6dT7htVKKdDsAPH+zLBI+CluAS9dAli/nPtPVZ/ZMUy90lHf0YFBldJR
        dn9OksLArj//3BGvDGwMaA6O9fYSW+0A5Tl2bmLVckbnnUsmLHOxQr3r4zXEeqGr
        YHTzk1sHNAUZGFvEOaTpyL9Wr4H70o6vd1IIxr4G4QKBgQDoHFdriQy0BTHjFito
        Y7ne55SBswijXm8sHR1gxIVw3PBltgk57TzJNQzALSM9uNllbwZmpviJ1PWY/bu+
        SFRykGa7J2Hc3ZcovSJLDVv7sxlBnHCx4WZ5xDbFdWXtKK7i9vViLfSIlyuxmclh
        98ZD9Fq1+Z7TNFJ1nvMG/g9nLQKBgQC8D6AmPL6bFPrMI6W2Jw6T4U39anrbFayi
        YMZFvzbnMetkELLWrRrUOwsNe8SOrk18+L2JlRcTTbLPPAmliHt/47wp4r64MSQl
        4Jg1LgEzLYa0o3M0NNV2T9GKHjjzcklAVxtmBuc/q/SINy21qUJQ8b72nWKaX9Hz
        RecRvqHMGQKBgQCV9/nj2SEED3c0KlbRk928UBR72Jl0NMfP0N/ybgdp7NbGYN+F
        NetYdZZPdNqYPp74Eswn9yoOpDIrL4XmZAVsIDDAK6nncqUABXPq2i7cadOfuNx3
        khMMCeL5oejBWs/khXv2e4rL1iC9F4gubFEGBxO1EBu2is/cf1623eBF4QKBgCoi
        KhRHCcE/Cw2PcwIDcB2rnciIAaxyB7J9kg5wT8Guinlp0FeOgvNHoytLLnd1D8FP
        DU/0yi21+7i4T8T5dgnqIO8VcPtdbybZUeCgRP6NVZ/E+vuYVrbiHSUfrkzEryqu
        GWJba5X1VZzrF9+aY1Q1RT6FdmD11Nj3MVTla+SJAoGAAapMYjF/3JYMUVsE7oij
        ZJseZnPIWgmSKftr4HZm7ZWEG/IynU7Tcd+uHoRbe+FejNvpyHP2coEGCqZjanTy
        59EgoMn3rJfPcH+Xa22t9ahkSK+eA6nPb0jbxD//DjdCr3VEJdiryAt6OH4dyAll
        qqTtHaxpVGnDJy/EkVk1/lY=
        -----END PRIVATE KEY-----
        """,
        """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDQ3JsvPxSYI+NB
        9iPmPpInxYUm4Rj2SSRmxI1WQ7IEf+UgWvenE1chaj9gaa8mJnNYRtdDa3uMEFoU
        /XaKV3N+0s4tpBut2WxqqfniG0NHH+NcH5WJCo7QE5WBlYwbyL7tXPlMOk1juIst
        wEj4hGLcJA83Yuv8kXgqJUvMj5FXf1zjoKY+Ci1PKgGcgc5SNCqnasj+mt24cxEe
        5ZyBqgYwqKkFgZhSO4upAIvq2gjQRBLVdZvcihEDKcCsgu+dqWe2bZYJOGm0hnQm
        vtNNpPSdq+XML2mfSirp6324+C0BAWKkGiPTS6usZeCt94lRSZJ8rC7LWWLtBRAr
        Wtr9VSxHAgMBAAECggEAShAIaYMVYvPK6P+G8GT8v+SvWD+W8fKy2UxWkCH2NNlD
        XytSyWi2y28ZJS+kv8L/wOxx9gLdrye3Qd01VU44ct7+5LleZVIFu3cl2JNxUn3Q
        ykCa7psTVF61c9ubcNjJN3NyJaFBAx0UIXefiJytT8HrsWi/JPNSqKNMEzBPyjYI
        LtOThtHGkvFwcPIlbr3WS4aC+CgVpZkFsAt9eP0Xv4R708Hhhno7DR50BffnomN5
        NdbUEMvbVvzRjrCaRl8qOaxd6oZifmTcR4bGhL+Tjn61fHsG1dDsnVgSQ+mwchzh
        ofENwekIQqipndvBuM2NyFlABN/+bIJ6VxuhJMyxhQKBgQDrF8njaxh2i8cltVnn
        sq4qtailtCtryly7NMMJYjYRmAt2xV9617FarpbWzyxsNIP2CH8wi7jW3cmuycQq
        PlNYTZyQuy54OHw40prjV81QXaCGHiZ3JeXKCY7Rp8gb90Yg5RBeqh5XdWPZvNCO
        YSwC7rVXYcYkUjnzf1V3KDwpnQKBgQDjb6EAGaJhPBXZbPlVTg28NGUFn6FgQNdO
        VFuWHo9ZVXFuuWXJg0n69taYqpdsyTBqsHyK0FSo58SgXlnVkkHNG4jd4XhTgUHs
        5HZbRQ+XtqdB7JwR2q4eU9OprrJXETJP5dxtXxRPdDe4YhNtKjWaBUOiMEQFiwwp
        WaEWyJ/KMwKBgQDM5HjCSi6R8xToGnx24VXGR3jqonJNiZr0VfG+FeiFwPwM0cx7
        Zc1e+VbhdMKEs+hm39TqXHwGWFpUiej74EIHbe0MfvbrNF+frn3rsjRw3IjxGwnv
        QgpZ4aaltxNCvGpUdQ+lUaMMGnWh6VvjG3GeRKmrtL1aHof/XnUAWwLESQKBgFZx
        XiMYmyQT30YVairnEMdgrqjVhFN+MZc+7tR+5wMQO53W734I3Xx6hxPdetJJIZLb
        Y2qrRhIwjQZa9g/7l/DqLzoN8VrjvPfZ2bZU6FlEfgvLb4JFuHokaEWM9ZGsIpBF
        kGMtiR2t0WPOOw35xge1SoCBkcj9kXDB9T0gocMLAoGBAIe/qtA5L3nGfZ/Jd+9P
        gOmelAfZg+VNm8aH77YGJ7hTF7XrJ3Sx//CWq3nnzNRhsH8OD9fhKHNqVmVyvNmG
        m/lBmQgn1x3ANof0oe6mP/PwvQ4iG4OZQg1T0M0BB+soADtxVFZWUFSYg9VGVVOX
        C3IC6VTxJgZ20NmCAQQHWnbU
        -----END PRIVATE KEY-----
        """,
        """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDEVOWFUsf3C+xq
        khtO+v/f5djHJSqUIvi++5Yrw2FYrg3lyTYRjngJiqvYGddcWmVgU71iNNeoVtch
        lwvjpzOJ8GKDFs7/Gg2udp/9yymKncyFsvQj2AKR7sEgdRDly6ZqOk+Ap/wCWtX6
        KT+0BQarYLZcP+i/q8Ym2LCaFDs3LVD/cRsSyeGWj3rLtDyzt3XggFoVQWzRValB
        xAukA0HW509MLadTcBAirgG8hi9QJCD7QL/FrTm2hUjOFT+RemArsJOgPQXhpm+y
        rmMZTV8EUjY8MUn6xruEY1CPOBM8Q8iwmdLQwubFGXqpvB/XD2tQ/MAR8eWYPs1h
        G5iHpH6NAgMBAAECggEASG0rKKZTp0LKSbwxf87fcsjXUgvXa8OE8OtdyDIw6KZ4
        8QJrxElC5f42i6dox6R/TmxF6oMk5XB3t2gB1k8Zl7LKnKJe5UPGtUwElHsMjZrN
        1qqgHtLyi8RAkYkuHR+l+f0d1A/kSzgYRMtPuUi7X6BzVY+r/H1RQYZhi82X1K/o
        qem1JjDlwXP+OAZSV7siGyuebAukjACo6QBjFtdIKGX119jDq9DicsIeThwjtcTr
        929O+07tTqf9G3GI5uklaGBlnsgDzg0zVIKUjQeasDIp6+knQGQclX0SLXZvzd9C
        ZCguL9l7qU6G1sKb2nHRkLTXflEDj5rMrFRMkzKi/wKBgQDwQHJz86R02J6m1ZyK
        H3zqEZmcNc38GvKvAvT6xiYscP/aSeMjXsaw48tUlF//hwELvvBltLK+v01gw/CA
        D0wq1VG0Mcgru0dghhsCqoRND/kO3bjB8cs3OY0mYC8on/2sqaFwYPRIqPpaAAx1
        zFeIN/P5PcGnvmjU2PgrL8ZV+wKBgQDRM3JFbjZUkb7qdllSsmmNL9Qq/83nmLsD
        gOgAZLPjTPHxVYM339aRSWpRdJh2fPBNSJrD9VUCDSZia5tKkQJ1FkSiP13c6wwr
        44I3hu55Bct8LIRz4PwZc0i9NBhWEUuWHe5pWdVjl9Vy/457qDbXYuW8egT82FVs
        2oe0Ot4/FwKBgAztCrteUmzO8so7F+7+frQBOmiDJI/5yzDLUe7kFk2xzrIp44SV
        ps8BkoD8cqXG17GQFlMCg9Nra3hXUmsxZ4GudHTjcMeZjd+Nl4pvLisPPvEj0Lru
        jWZtPEDiT+c5pGZTwhHPxZTbMo0BD6qO0e7MQ94XCoJB5lX9TmzUZzFdAoGBAJYd
        d4sQydWne7qcz/3CXnFcd7+fLW5ZryCVeGUH3fll9lq5hN4sNbitWKg4pUqo3npm
        df/VZHmDXB7VnmpEYeII55kRJVZoJ6S6rW8Q2MBpAxoIi8bnE59jlTeHUUs5P+bp
        dXGNb8z2X8kUTna3PxsRMU8ss7WHuszQhv4yG9ZjAoGBAOmvjDGla1kSurhVvAe9
        3+3IkOZEp1kkVy4FgUJlOsRunyPm8jyaY25dH3y4yLaGkDvqb9qNcc+tjd5ScpNl
        Y66tryiuJe9vSEY6cp88hX8E69fEXZFmgoLmBdv9nwnKhYDFNHOE06LwHrCU3yOH
        xAZfmJgRlt8dv4LiJccLb5ZX
        -----END PRIVATE KEY-----
        """,
        """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDqRsqTooG8aBEH
        cfw8vEZr+hlUZkjmel+NcZGxtM6Z2h4iTLEd75MRWpQZljZrOC9oWTPCHQmK7nXO
        Q9etQHGl/uGZPzOIuY3AOED8uoXJGIcG3eGVrIDgkrtinXuaJgxvsfgVtirbnT4y
        jYBcMcfRkagX8HxuuzKns8c5X+85Kw7FGbwRsvgWxd3v41DIhQkgaft3ikPAvBcQ
        lCU5Z21iLJ/pctljGfG+ATis2wrb9JDtf2M5OAYDRIY9En0nlNxB+WPzgGVnG5MC
        +01OuloLVEng0sdEIUj6nZejhylXFTZPcs0danye9OQ+XGxI4KYY0r5SVg/4oQoe
        vOlPBUlzAgMBAAECggEANKLQG+h8lpyZCt+wyOKSPetUqpJKmcHv2wMjtVYGvyly
        8MjjWHL9y33a3X7S3jci66JzDw9gF/9op321pP7gKegAvuIkzXjHIONisoWjzmE8
        4S2T5AF8eThucoMohKM80xGcyCAENBB5q3kAWHZ0yyCbMDm/c0+K24P4ZGsp/+E/
        C8ZA6eCxPBqKFe9fF/3jgwTwdKCjeP6sNMoaROiNDKbJCBlRDbcIpFvj/QCtSOQh
        BABrlAcE0TLV+2hR1q64XWcIjPOP0CyIOiUdcYMiFAUqk8TyuZ1wk7I3jxGfX2xJ
        wIn8jJLzjJONAGgV1lvI06yE1vnMRWvSceSQlPdNMQKBgQD/r8sGrS8GdELdWcx2
        smZ6wHMjISdLNhQTEOPWgxyzuS/5ElM3//IbCCwtI0R1w04ko4Iohd6d73Ev8fzj
        3FymKN05j+bW0JounoE7cfyRqitt5RsAfPRC4xB2za/c07xW4qqpNYZS0YT4DOIN
        Qw0Z+U7M7MoMWBR9OraIk1Z2sQKBgQDqkEgz86BXiaLkwq0nPTZJuByvpPYAn7Da
        V7VmihUbiioYc3p4NUOHRFGKRAqYGBzU98ErArkpn4lkLjN0eGMpnxsJS4tbUju8
        pj35O5kUT2d9msO0D5gnJir0LuFU5G+5PVcIv3ORyaC/9JLJGraoRZE7+48+YRjk
        c5bs6DpTYwKBgGKAtxa7YYJ7B8d+8OZJlHF18uV1wE2ZZ+Jwf1YE7OnQTksGZEkO
        sZb4bwx0qcs0ksZKt7ok2L6/oDt4XpTqMEdTNucWKThY5Q1QwzjDkSoNBO4xdVWa
        zf92usEKPNY2PDi82kKV/Emrri5hyDSTwFhhU5pfHvfidwJHvEqheI4BAoGBAMlO
        fHkBrGmUORWlMh/L++x2sz/XDj1oz8oDni5bcVQKVqhXaxMBe2v6qRRF4uW3Q/9O
        hhzYoHrlbW9p60UZENmmr/hhOj9sqtHzxppAmNcCcqosiard+1IWAqVAGqjVyECt
        MSXT0WacKXa0eslXQM3XrpZRBhWeFVPzE+NMRspLAoGBAKPqdq06Zpa9IY4bNr8k
        6O+6XKJ/+VZy2O5PujN8j1JmtEHLcnmISHK4OhwjVQk0itmn1M1FyE4eZHMsfkly
        qQIZPHn6v/O9kDSQRhJpqJhF0G8IWherfhBjK61C7pfAd6tEXznx5HBrwoJXVGX/
        rvnf7/cdNFha8tyancSTkCW4
        -----END PRIVATE KEY-----
        """
    ]
}
