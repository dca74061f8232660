package io.kiln.cli;

import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnSettings;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --api-url} and {@code --data-dir} for the commands that talk to a coordinator. */
public class ApiOptions {
    @Option(names = "--api-url", paramLabel = "URL",
            description = "Coordinator URL. Default: KILN_API_URL, else apiUrl in <data-dir>/coordinator.json, "
                    + "else http://127.0.0.1:7480.")
    String apiUrl;

    @Option(names = "--data-dir", paramLabel = "DIR",
            description = "Kiln data dir holding the token and coordinator.json. Default: KILN_DATA_DIR, else ~/.kiln.")
    Path dataDir;

    public KilnSettings settings() {
        return KilnSettings.resolve(System.getenv(), dataDir, apiUrl);
    }

    public KilnClient client() {
        return KilnClient.forSettings(settings());
    }
}
