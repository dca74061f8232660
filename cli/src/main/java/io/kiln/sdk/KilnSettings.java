package io.kiln.sdk;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;

/**
 * Where the SDK finds the coordinator and its token.
 * <ul>
 *   <li>data dir: an explicit one, else {@code KILN_DATA_DIR}, else {@code ~/.kiln};</li>
 *   <li>API URL: an explicit one, else {@code KILN_API_URL}, else the {@code apiUrl} field of
 *       {@code <data-dir>/coordinator.json} (the coordinator writes it once ready), else
 *       {@value #DEFAULT_API_URL};</li>
 *   <li>token: {@code KILN_TOKEN}, else the content of {@code <data-dir>/token}, read at each
 *       request (the coordinator creates it on its first start).</li>
 * </ul>
 * {@link #toString()} never shows the token.
 */
public final class KilnSettings {
    public static final String DEFAULT_API_URL = "http://127.0.0.1:7480";
    public static final String ENV_DATA_DIR = "KILN_DATA_DIR";
    public static final String ENV_API_URL = "KILN_API_URL";
    public static final String ENV_TOKEN = "KILN_TOKEN";

    private final Path dataDir;
    private final String apiUrl;
    private final String tokenOverride;

    private KilnSettings(Path dataDir, String apiUrl, String tokenOverride) {
        this.dataDir = dataDir;
        this.apiUrl = apiUrl;
        this.tokenOverride = tokenOverride;
    }

    /** Settings from the process environment and {@code ~/.kiln}. */
    public static KilnSettings fromEnvironment() {
        return resolve(System.getenv(), null, null);
    }

    /**
     * Resolves the settings.
     *
     * @param env            environment variables (System.getenv() or a test map)
     * @param dataDirOverride an explicit data dir (e.g. {@code --data-dir}), or null
     * @param apiUrlOverride  an explicit API URL (e.g. {@code --api-url}), or null
     */
    public static KilnSettings resolve(Map<String, String> env, Path dataDirOverride, String apiUrlOverride) {
        Path dataDir = dataDirOverride != null ? dataDirOverride : defaultDataDir(env);
        String url = blankToNull(apiUrlOverride);
        if (url == null) {
            url = blankToNull(env.get(ENV_API_URL));
        }
        if (url == null) {
            url = apiUrlFromCoordinatorFile(dataDir);
        }
        if (url == null) {
            url = DEFAULT_API_URL;
        }
        return new KilnSettings(dataDir, stripSlash(url), blankToNull(env.get(ENV_TOKEN)));
    }

    /** Explicit settings: this URL, this data dir for the token file, and no token override. */
    public static KilnSettings of(String apiUrl, Path dataDir) {
        return new KilnSettings(dataDir, stripSlash(apiUrl), null);
    }

    /** {@code KILN_DATA_DIR}, else {@code ~/.kiln}. */
    public static Path defaultDataDir(Map<String, String> env) {
        String d = blankToNull(env.get(ENV_DATA_DIR));
        return d != null ? Paths.get(d).toAbsolutePath() : Paths.get(System.getProperty("user.home"), ".kiln");
    }

    /** The {@code apiUrl} of {@code <dataDir>/coordinator.json}, or null when absent or unreadable. */
    public static String apiUrlFromCoordinatorFile(Path dataDir) {
        Path f = dataDir.resolve("coordinator.json");
        if (!Files.isRegularFile(f)) {
            return null;
        }
        try {
            JsonNode n = KilnClient.MAPPER.readTree(f.toFile());
            return n == null ? null : blankToNull(n.path("apiUrl").asText(null));
        } catch (IOException e) {
            return null;
        }
    }

    public Path dataDir() {
        return dataDir;
    }

    public String apiUrl() {
        return apiUrl;
    }

    public Path tokenFile() {
        return dataDir.resolve("token");
    }

    /** {@code KILN_TOKEN} or the token file's content; null when neither exists. */
    public String token() {
        if (tokenOverride != null) {
            return tokenOverride;
        }
        try {
            Path f = tokenFile();
            return Files.isReadable(f) ? blankToNull(Files.readString(f, StandardCharsets.UTF_8).trim()) : null;
        } catch (IOException e) {
            return null;
        }
    }

    /** Where the token comes from, for messages (never the token itself). */
    public String tokenSource() {
        return tokenOverride != null ? ENV_TOKEN : tokenFile().toString();
    }

    @Override
    public String toString() {
        return "KilnSettings{apiUrl=" + apiUrl + ", dataDir=" + dataDir + ", token from " + tokenSource() + "}";
    }

    static String stripSlash(String url) {
        String u = url.trim();
        while (u.endsWith("/")) {
            u = u.substring(0, u.length() - 1);
        }
        return u;
    }

    static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s.trim();
    }
}
