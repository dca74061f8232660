package io.kiln.cli;

import io.kiln.sdk.KilnSettings;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code kiln invoke}: one request to a model endpoint; prints the response body. */
@Command(name = "invoke", mixinStandardHelpOptions = true,
        description = {"Send one prediction request to an endpoint started by kiln serve and print the answer.",
                "Example: kiln invoke http://127.0.0.1:8080 --data '{\"instances\": [[1.0, 2.0]]}'",
                "         kiln invoke my-endpoint --data ...   (a managed endpoint, through the coordinator's router)"})
public final class InvokeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "URL|ENDPOINT",
            description = "Endpoint URL (without a path, /invocations is used), or the name of a managed endpoint (kiln deploy).")
    String url;

    @Option(names = "--data", paramLabel = "BODY", description = "Request body; @FILE reads a file.", required = true)
    String data;

    @Option(names = "--content-type", description = "Default: text/csv when the body does not start with { or [, else application/json.")
    String contentType;

    @Option(names = "--accept", description = "Response type: application/json or text/csv.")
    String accept;

    @Option(names = "--target-model", paramLabel = "NAME", description = "Multi-model endpoints: the model (header X-Kiln-Target-Model).")
    String target;

    @Option(names = "--target-variant", paramLabel = "NAME", description = "Managed endpoints: the variant (header X-Kiln-Target-Variant).")
    String targetVariant;

    @Option(names = "--api-url", paramLabel = "URL", description = "Managed endpoints: the coordinator (default: from the data dir).")
    String apiUrl;

    @Option(names = "--data-dir", paramLabel = "DIR", description = "Kiln data dir holding the token. Default: KILN_DATA_DIR, else ~/.kiln.")
    Path dataDir;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String body = data.startsWith("@") ? Files.readString(Path.of(data.substring(1))) : data;
        KilnSettings s = KilnSettings.resolve(System.getenv(), dataDir, apiUrl);
        URI u;
        if (!url.contains("://")) {
            if (s.apiUrl() == null) throw new UsageException("no coordinator for endpoint " + url + ": start one (kiln local up) or give --api-url");
            u = managedUrl(s, url);
        } else {
            u = URI.create(url);
        }
        if (u.getPath() == null || u.getPath().isEmpty() || u.getPath().equals("/")) u = u.resolve("/invocations");
        String ct = contentType != null ? contentType
                : body.stripLeading().startsWith("{") || body.stripLeading().startsWith("[") ? "application/json" : "text/csv";
        if (s.token() == null) throw new UsageException("no API token: set KILN_TOKEN or create " + s.tokenFile());
        HttpRequest.Builder b = HttpRequest.newBuilder(u).timeout(Duration.ofSeconds(120))
                .header("Authorization", "Bearer " + s.token()).header("Content-Type", ct)
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (accept != null) b.header("Accept", accept);
        if (target != null) b.header("X-Kiln-Target-Model", target);
        if (targetVariant != null) b.header("X-Kiln-Target-Variant", targetVariant);
        HttpResponse<String> r;
        try {
            r = HttpClient.newHttpClient().send(b.build(), HttpResponse.BodyHandlers.ofString());
        } catch (ConnectException e) {
            err.println("kiln invoke: cannot connect to " + u + " (is kiln serve running?)");
            return ExitCodes.API;
        }
        if (r.statusCode() / 100 != 2) {
            err.println("kiln invoke: HTTP " + r.statusCode() + ": " + r.body());
            return ExitCodes.API;
        }
        r.headers().firstValue("X-Kiln-Variant").ifPresent(v -> err.println("(variant: " + v + ")"));
        out.print(r.body().endsWith("\n") ? r.body() : r.body() + "\n");
        r.headers().firstValue("X-Kiln-Cold-Start-Ms").ifPresent(ms -> err.println("(cold start: " + ms + " ms)"));
        out.flush();
        return ExitCodes.OK;
    }

    /**
     * A managed endpoint's invocation URL: its {@code invocationUrl} (the coordinator's data-plane
     * port, the fast way in) when the coordinator shows one, else the router on the API port.
     */
    private static URI managedUrl(KilnSettings s, String name) {
        String enc = java.net.URLEncoder.encode(name, java.nio.charset.StandardCharsets.UTF_8);
        URI viaApi = URI.create(s.apiUrl() + "/endpoints/" + enc + "/invocations");
        if (s.token() == null) return viaApi;
        try {
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(s.apiUrl()
                    + "/api/v1/endpoints/" + enc)).timeout(Duration.ofSeconds(10)).header("Authorization", "Bearer " + s.token())
                    .GET().build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) return viaApi;
            String u = io.kiln.sdk.KilnClient.MAPPER.readTree(r.body()).path("invocationUrl").asText("");
            return u.isEmpty() ? viaApi : URI.create(u);
        } catch (IOException | IllegalArgumentException e) {
            return viaApi;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return viaApi;
        }
    }
}
