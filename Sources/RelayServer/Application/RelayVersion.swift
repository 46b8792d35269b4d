/// The relay's version, for `--version`, `m365relay_build_info` and the dashboard.
public enum RelayVersion {
    public static let current = "0.5.0"
}
