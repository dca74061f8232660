package io.kiln.sdk;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A small client of the Kiln REST API (docs/api.md), on java.net.http and Jackson.
 *
 * <pre>{@code
 * KilnClient kiln = KilnClient.fromEnvironment();          // KILN_API_URL / ~/.kiln/coordinator.json, KILN_TOKEN / ~/.kiln/token
 * JobView job = kiln.createJob(JobSpec.named("demo").algorithm("mlp").channel("train", "/data/fmnist"));
 * String end = kiln.streamMetrics(job.id(), true, ev -> System.out.println(ev.event() + " " + ev.data()));
 * }</pre>
 *
 * Errors are unchecked: a non-2xx answer is a {@link KilnApiException} (status, the server's
 * {@code error} and {@code details}); no coordinator or a lost connection is a
 * {@link KilnConnectionException}. Thread-safe. The token is never logged nor put in a message.
 */
public final class KilnClient {
    /** The shared, lenient JSON mapper (unknown properties are ignored). */
    public static final ObjectMapper MAPPER = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    public static final String JOBS = "/api/v1/training-jobs";
    public static final String MODEL_GROUPS = "/api/v1/model-package-groups";
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(30);

    private final String apiUrl;
    private final Supplier<String> token;
    private final Duration requestTimeout;
    private final HttpClient http;
    /** The router's data-plane base URL ("": the coordinator shows none); null: not asked yet. */
    private volatile String dataPlaneUrl;

    /** A client for this base URL (e.g. {@code http://127.0.0.1:7480}) and token (may be null). */
    public KilnClient(String apiUrl, String token) {
        this(apiUrl, () -> token, DEFAULT_REQUEST_TIMEOUT);
    }

    /**
     * A client whose token is looked up at each request (a coordinator creates its token file on
     * first start, possibly after this client was made).
     */
    public KilnClient(String apiUrl, Supplier<String> token, Duration requestTimeout) {
        this.apiUrl = KilnSettings.stripSlash(Objects.requireNonNull(apiUrl, "apiUrl"));
        this.token = token == null ? () -> null : token;
        this.requestTimeout = requestTimeout == null ? DEFAULT_REQUEST_TIMEOUT : requestTimeout;
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    /** A client configured from {@code KILN_*} variables and the data dir (see {@link KilnSettings}). */
    public static KilnClient fromEnvironment() {
        return forSettings(KilnSettings.fromEnvironment());
    }

    /** A client for these settings; the token is re-read at each request. */
    public static KilnClient forSettings(KilnSettings settings) {
        return new KilnClient(settings.apiUrl(), settings::token, DEFAULT_REQUEST_TIMEOUT);
    }

    /** The base URL, without a trailing slash. */
    public String apiUrl() {
        return apiUrl;
    }

    // ---------------------------------------------------------------- health

    /** {@code GET /health/live}: the coordinator process answers. */
    public JsonNode live() {
        return getJson("/health/live");
    }

    /** {@code GET /health/ready}: {@code {"status":"ready","workers":N}}; a 503 raises KilnApiException. */
    public JsonNode ready() {
        return getJson("/health/ready");
    }

    /** True when {@code /health/ready} answers 200; false on 503 or when nothing answers. */
    public boolean isReady() {
        try {
            ready();
            return true;
        } catch (KilnException e) {
            return false;
        }
    }

    // ---------------------------------------------------------------- cluster and jobs

    /** {@code GET /api/v1/cluster}: the workers. */
    public List<WorkerView> cluster() {
        JsonNode n = getJson("/api/v1/cluster");
        return convert(n.path("workers"), new TypeReference<List<WorkerView>>() { });
    }

    /**
     * {@code POST /api/v1/training-jobs}. The spec may be a JSON string, a Jackson tree, a Map, a
     * {@link JobSpec} or any POJO of that shape.
     */
    public JobView createJob(Object spec) {
        String body = specJson(spec);
        return convert(send("POST", JOBS, body), JobView.class);
    }

    /** {@code GET /api/v1/training-jobs/{id}}, with history. */
    public JobView getJob(String jobId) {
        return convert(getJson(jobPath(jobId)), JobView.class);
    }

    /** {@code GET /api/v1/training-jobs}: newest first, without history. */
    public List<JobView> listJobs() {
        JsonNode n = getJson(JOBS);
        return convert(n.path("jobs"), new TypeReference<List<JobView>>() { });
    }

    /** {@code POST /api/v1/training-jobs/{id}/stop}: the job, Stopping or Stopped; 409 if already final. */
    public JobView stopJob(String jobId) {
        return convert(send("POST", jobPath(jobId) + "/stop", null), JobView.class);
    }

    /**
     * Polls {@link #getJob} every {@code pollInterval} until the job is final.
     *
     * @throws KilnException if it is not final within {@code timeout}
     */
    public JobView awaitFinal(String jobId, Duration timeout, Duration pollInterval) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            JobView v = getJob(jobId);
            if (v.isFinal()) {
                return v;
            }
            if (System.nanoTime() > deadline) {
                throw new KilnException("job " + jobId + " is still " + v.status() + " after " + timeout);
            }
            sleep(pollInterval);
        }
    }

    // ---------------------------------------------------------------- model registry (docs/registry.md)

    /** {@code POST /api/v1/model-package-groups}; 409 if the group exists. */
    public ModelGroupView createModelGroup(String name, String description) {
        return convert(postJson(MODEL_GROUPS, Map.of("name", name, "description", description == null ? "" : description)),
                ModelGroupView.class);
    }

    /** {@code GET /api/v1/model-package-groups}: by name, without versions. */
    public List<ModelGroupView> listModelGroups() {
        return convert(getJson(MODEL_GROUPS).path("groups"), new TypeReference<List<ModelGroupView>>() { });
    }

    /** {@code GET /api/v1/model-package-groups/{group}}, with its versions. */
    public ModelGroupView getModelGroup(String group) {
        return convert(getJson(modelGroupPath(group)), ModelGroupView.class);
    }

    /**
     * {@code POST .../{group}/versions}: {@code request} is the JSON body (a Map, tree or POJO), e.g.
     * {@code Map.of("trainingJobId", id)} or {@code Map.of("modelUri", uri, "framework", "torchscript")}.
     */
    public ModelVersionView registerModel(String group, Object request) {
        return convert(postJson(modelGroupPath(group) + "/versions", request), ModelVersionView.class);
    }

    /** {@code GET .../{group}/versions/{version}}, with its approval history. */
    public ModelVersionView getModelVersion(String group, int version) {
        return convert(getJson(modelGroupPath(group) + "/versions/" + version), ModelVersionView.class);
    }

    /** {@code GET .../{group}/versions/latest-approved}; 404 (KilnApiException) when none is Approved. */
    public ModelVersionView latestApprovedModel(String group) {
        return convert(getJson(modelGroupPath(group) + "/versions/latest-approved"), ModelVersionView.class);
    }

    /** {@code POST .../{group}/versions/{version}/approval}: Approved, Rejected (or PendingManualApproval). */
    public ModelVersionView setModelApproval(String group, int version, String status, String reason) {
        return convert(postJson(modelGroupPath(group) + "/versions/" + version + "/approval",
                Map.of("status", status, "reason", reason == null ? "" : reason)), ModelVersionView.class);
    }

    /** {@code /api/v1/model-package-groups/<group>} with the name escaped as a path segment. */
    public static String modelGroupPath(String group) {
        if (group == null || group.isBlank()) {
            throw new IllegalArgumentException("model package group name is empty");
        }
        return MODEL_GROUPS + "/" + URLEncoder.encode(group.trim(), StandardCharsets.UTF_8).replace("+", "%20");
    }

    // ---------------------------------------------------------------- streams

    /**
     * {@code GET .../logs?follow=...}: hands each {@code log} event to {@code consumer}. With
     * {@code follow} it blocks until the job is final (or the connection drops).
     *
     * @return the final status from the {@code end} event, or null when the stream ended without one
     *     (not following a job that is not final, or a dropped connection)
     */
    public String streamLogs(String jobId, boolean follow, Consumer<LogLine> consumer) {
        return streamEvents(jobPath(jobId) + "/logs?follow=" + follow, ev -> {
            if ("log".equals(ev.event())) {
                consumer.accept(ev.as(LogLine.class));
            }
        });
    }

    /**
     * {@code GET .../metrics?follow=...}: hands every event to {@code consumer}: {@code progress}
     * (data: {@link Progress}), {@code status} (data: {@link StatusEvent}) and the last, {@code end}
     * (data {@code {"status": ...}}). Use {@link SseEvent#as(Class)} to bind the data.
     *
     * @return the final status from the {@code end} event, or null when the stream ended without one
     */
    public String streamMetrics(String jobId, boolean follow, Consumer<SseEvent> consumer) {
        return streamEvents(jobPath(jobId) + "/metrics?follow=" + follow, consumer);
    }

    /**
     * Reads the {@code text/event-stream} at {@code pathAndQuery} until it ends, handing every
     * event to {@code consumer} on the calling thread. A consumer that throws aborts the stream
     * (the connection is closed) and the exception propagates.
     *
     * @return the {@code status} of an {@code end} event, or null when none came
     */
    public String streamEvents(String pathAndQuery, Consumer<SseEvent> consumer) {
        HttpRequest req = request(pathAndQuery, null)
                .header("Accept", "text/event-stream")
                .GET()
                .build(); // no request timeout: a followed stream lasts as long as the job
        HttpResponse<InputStream> resp = exchange(req, HttpResponse.BodyHandlers.ofInputStream(), "GET", pathAndQuery);
        AtomicReference<String> end = new AtomicReference<>();
        try (InputStream body = resp.body()) {
            if (resp.statusCode() / 100 != 2) {
                throw apiError(resp.statusCode(), new String(body.readAllBytes(), StandardCharsets.UTF_8));
            }
            SseParser.parse(body, ev -> {
                if ("end".equals(ev.event())) {
                    String status = null;
                    try {
                        status = ev.json().path("status").asText(null);
                    } catch (KilnException ignored) {
                        // keep null
                    }
                    end.set(status == null ? "" : status);
                }
                consumer.accept(ev);
            });
        } catch (IOException e) {
            if (end.get() == null) {
                throw new KilnConnectionException(apiUrl, "lost the connection to the Kiln coordinator at "
                        + apiUrl + " while reading " + pathOnly(pathAndQuery) + ": " + e.getMessage(), e);
            }
        }
        return end.get();
    }

    // ---------------------------------------------------------------- tuning jobs (docs/tuning.md)

    public static final String TUNING_JOBS = "/api/v1/tuning-jobs";

    /** {@code POST /api/v1/tuning-jobs}: the TuningSpec as JSON text, a tree, a Map or a POJO; the created view. */
    public JsonNode createTuningJob(Object spec) {
        return send("POST", TUNING_JOBS, specJson(spec));
    }

    /** {@code GET /api/v1/tuning-jobs/{id}}: the view with its leaderboard (trials best first). */
    public JsonNode getTuningJob(String id) {
        return getJson(tuningJobPath(id));
    }

    /** {@code GET /api/v1/tuning-jobs}: newest first, each with its best trial. */
    public List<JsonNode> listTuningJobs() {
        List<JsonNode> out = new java.util.ArrayList<>();
        getJson(TUNING_JOBS).path("tuningJobs").forEach(out::add);
        return out;
    }

    /** {@code POST /api/v1/tuning-jobs/{id}/stop}: stops the tuning job and its running trials. */
    public JsonNode stopTuningJob(String id) {
        return send("POST", tuningJobPath(id) + "/stop", null);
    }

    /** {@code /api/v1/tuning-jobs/<id>} with the id escaped as a path segment. */
    public static String tuningJobPath(String id) {
        if (id == null || id.isBlank()) {
            throw new IllegalArgumentException("tuning job id is empty");
        }
        return TUNING_JOBS + "/" + URLEncoder.encode(id.trim(), StandardCharsets.UTF_8).replace("+", "%20");
    }

    // ---------------------------------------------------------------- user code

    public static final String SOURCES = "/api/v1/sources";

    /**
     * {@code PUT /api/v1/sources/<name>} ({@code <sha256>.tar.gz} or {@code <sha256>.jar}): uploads user
     * code into the coordinator's artifact store, which checks the digest; returns the URI it is stored
     * at (what a job spec names).
     */
    public String uploadSource(Path file, String name) {
        String path = SOURCES + "/" + name;
        HttpRequest.Builder b = request(path, Duration.ofMinutes(10)).header("Content-Type", "application/octet-stream");
        try {
            b.PUT(HttpRequest.BodyPublishers.ofFile(file));
        } catch (java.io.FileNotFoundException e) {
            throw new KilnException("cannot read " + file + ": " + e.getMessage(), e);
        }
        HttpResponse<String> resp = exchange(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8), "PUT",
                path);
        if (resp.statusCode() / 100 != 2) {
            throw apiError(resp.statusCode(), resp.body());
        }
        try {
            String uri = MAPPER.readTree(resp.body()).path("uri").asText("");
            if (uri.isEmpty()) throw new KilnException("PUT " + path + " answered without a uri: " + abbreviate(resp.body()));
            return uri;
        } catch (JsonProcessingException e) {
            throw new KilnException("PUT " + path + " answered with a body that is not JSON: " + abbreviate(resp.body()), e);
        }
    }

    // ---------------------------------------------------------------- raw access

    /** {@code GET} any API path (e.g. {@code /api/v1/training-jobs/ID}) as a JSON tree. */
    public JsonNode getJson(String path) {
        return send("GET", path, null);
    }

    /** {@code POST} a JSON body (null for none) to any API path; the answer as a JSON tree. */
    public JsonNode postJson(String path, Object body) {
        return send("POST", path, body == null ? null : specJson(body));
    }

    // ---------------------------------------------------------------- endpoints

    public static final String ENDPOINTS = "/api/v1/endpoints";

    /** {@code POST /api/v1/endpoints}: {name, variants: [...], ...}; the endpoint (status Creating). */
    public JsonNode createEndpoint(Object request) {
        return send("POST", ENDPOINTS, specJson(request));
    }

    /** {@code PUT /api/v1/endpoints/{name}}: new variants, blue/green; the endpoint (status Updating). */
    public JsonNode updateEndpoint(String name, Object request) {
        return send("PUT", ENDPOINTS + "/" + encode(name), specJson(request));
    }

    public JsonNode getEndpoint(String name) {
        return getJson(ENDPOINTS + "/" + encode(name));
    }

    public List<JsonNode> listEndpoints() {
        List<JsonNode> out = new java.util.ArrayList<>();
        getJson(ENDPOINTS).path("endpoints").forEach(out::add);
        return out;
    }

    public JsonNode deleteEndpoint(String name) {
        return send("DELETE", ENDPOINTS + "/" + encode(name), null);
    }

    /** Polls until the endpoint leaves Creating/Updating; its final view (InService or Failed). */
    public JsonNode awaitEndpoint(String name, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            JsonNode e = getEndpoint(name);
            String st = e.path("status").asText();
            if (!st.equals("Creating") && !st.equals("Updating")) return e;
            if (System.nanoTime() > deadline) {
                throw new KilnException("endpoint " + name + " still " + st + " after " + timeout.toSeconds() + " s");
            }
            try {
                Thread.sleep(250);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                throw new KilnException("interrupted while waiting for endpoint " + name, ie);
            }
        }
    }

    /** An answer through the router: status, body, the variant that served it, the cold-start ms (0: warm). */
    public record Invocation(int status, String body, String variant, long coldStartMs) {}

    /**
     * {@code POST /endpoints/{name}/invocations} through the coordinator's router; {@code targetVariant}
     * (null: by weight) picks a variant. Any status comes back (no exception for 4xx/5xx). Goes to
     * the router's data-plane listener (faster than the API port) once its URL is known: it is read
     * from the first endpoint view fetched here ({@code invocationUrl}) and kept; an unknown endpoint,
     * or a coordinator that shows no such URL, is invoked through the API port.
     */
    public Invocation invokeEndpoint(String name, String contentType, String body, String targetVariant) {
        return invokeEndpoint(name, contentType, body, targetVariant, null);
    }

    /** As above; {@code targetModel} (multi-model variants) names the model under the variant's prefix. */
    public Invocation invokeEndpoint(String name, String contentType, String body, String targetVariant, String targetModel) {
        String path = "/endpoints/" + encode(name) + "/invocations";
        String base = dataPlaneUrl(name);
        HttpResponse<String> r = null;
        if (base != null) {
            try {
                r = invoke(base, path, contentType, body, targetVariant, targetModel);
            } catch (KilnConnectionException e) {
                if (!isConnectRefused(e)) throw e;
                dataPlaneUrl = null; // the coordinator restarted on another port: ask again, or use the API port
                base = dataPlaneUrl(name);
            }
        }
        if (r == null) r = invoke(base != null ? base : apiUrl, path, contentType, body, targetVariant, targetModel);
        return new Invocation(r.statusCode(), r.body(), r.headers().firstValue("X-Kiln-Variant").orElse(null),
                r.headers().firstValue("X-Kiln-Cold-Start-Ms").map(Long::parseLong).orElse(0L));
    }

    private HttpResponse<String> invoke(String base, String path, String contentType, String body, String targetVariant,
                                        String targetModel) {
        HttpRequest.Builder b = request(base, path, requestTimeout).header("Content-Type", contentType)
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        if (targetVariant != null) b.header("X-Kiln-Target-Variant", targetVariant);
        if (targetModel != null) b.header("X-Amzn-SageMaker-Target-Model", targetModel);
        return exchange(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8), "POST", path);
    }

    /** The data-plane listener's base URL, from {@code name}'s view when not known yet; null: use the API port. */
    private String dataPlaneUrl(String name) {
        String known = dataPlaneUrl;
        if (known == null) {
            String u;
            try {
                u = getEndpoint(name).path("invocationUrl").asText("");
            } catch (KilnApiException e) {
                return null; // e.g. no such endpoint: the API port's router says so
            }
            int i = u.indexOf("/endpoints/");
            known = i > 0 ? u.substring(0, i) : "";
            dataPlaneUrl = known;
        }
        return known.isEmpty() ? null : known;
    }

    private static String encode(String s) {
        return java.net.URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    // ---------------------------------------------------------------- internals

    private JsonNode send(String method, String path, String jsonBody) {
        HttpRequest.Builder b = request(path, requestTimeout);
        if ("POST".equals(method) || "PUT".equals(method)) {
            b.header("Content-Type", "application/json");
            b.method(method, jsonBody == null ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(jsonBody, StandardCharsets.UTF_8));
        } else if ("DELETE".equals(method)) {
            b.DELETE();
        } else {
            b.GET();
        }
        HttpResponse<String> resp = exchange(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8),
                method, path);
        if (resp.statusCode() / 100 != 2) {
            throw apiError(resp.statusCode(), resp.body());
        }
        String body = resp.body();
        if (body == null || body.isBlank()) {
            return MAPPER.createObjectNode();
        }
        try {
            return MAPPER.readTree(body);
        } catch (JsonProcessingException e) {
            throw new KilnException(method + " " + path + " answered " + resp.statusCode()
                    + " with a body that is not JSON: " + abbreviate(body), e);
        }
    }

    private HttpRequest.Builder request(String path, Duration timeout) {
        return request(apiUrl, path, timeout);
    }

    private HttpRequest.Builder request(String base, String path, Duration timeout) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .header("Accept", "application/json");
        if (timeout != null) {
            b.timeout(timeout);
        }
        if (path.startsWith("/api/") || path.startsWith("/endpoints/")) {
            String t = token.get();
            if (t != null && !t.isBlank()) {
                b.header("Authorization", "Bearer " + t.trim());
            }
        }
        return b;
    }

    private <T> HttpResponse<T> exchange(HttpRequest req, HttpResponse.BodyHandler<T> handler, String method,
                                         String path) {
        try {
            return http.send(req, handler);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KilnException("interrupted during " + method + " " + pathOnly(path), e);
        } catch (IOException e) {
            throw connectionError(e, method, path);
        }
    }

    private KilnConnectionException connectionError(IOException e, String method, String path) {
        if (isConnectRefused(e)) {
            return new KilnConnectionException(apiUrl, "no Kiln coordinator at " + apiUrl
                    + ": start one with `kiln local up`", e);
        }
        if (e instanceof HttpConnectTimeoutException) {
            return new KilnConnectionException(apiUrl, "timed out connecting to the Kiln coordinator at " + apiUrl, e);
        }
        if (e instanceof HttpTimeoutException) {
            return new KilnConnectionException(apiUrl, "the Kiln coordinator at " + apiUrl
                    + " did not answer " + method + " " + pathOnly(path) + " within " + requestTimeout.toSeconds() + " s", e);
        }
        return new KilnConnectionException(apiUrl, "cannot talk to the Kiln coordinator at " + apiUrl + " ("
                + method + " " + pathOnly(path) + "): " + describe(e), e);
    }

    static boolean isConnectRefused(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ConnectException) {
                return true;
            }
        }
        return false;
    }

    private static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /** Maps a non-2xx answer to a KilnApiException (the server's error + details when JSON). */
    static KilnApiException apiError(int status, String body) {
        String error = null;
        List<String> details = new ArrayList<>();
        if (body != null && !body.isBlank()) {
            try {
                JsonNode n = MAPPER.readTree(body);
                if (n != null && n.isObject()) {
                    error = n.path("error").asText(null);
                    JsonNode d = n.path("details");
                    if (d.isArray()) {
                        d.forEach(x -> details.add(x.isTextual() ? x.asText() : x.toString()));
                    } else if (d.isTextual()) {
                        details.add(d.asText());
                    }
                }
            } catch (JsonProcessingException notJson) {
                error = abbreviate(body.trim());
            }
        }
        if (error == null || error.isBlank()) {
            error = defaultReason(status);
        }
        return new KilnApiException(status, error, details);
    }

    private static String defaultReason(int status) {
        switch (status) {
            case 400: return "bad request";
            case 401: return "unauthorized";
            case 403: return "forbidden";
            case 404: return "not found";
            case 409: return "conflict";
            case 503: return "coordinator not ready";
            default: return "HTTP " + status;
        }
    }

    private static String specJson(Object spec) {
        Objects.requireNonNull(spec, "spec");
        try {
            if (spec instanceof String) {
                String s = (String) spec;
                JsonNode n = MAPPER.readTree(s); // fail early on malformed JSON
                if (n == null || !n.isObject()) {
                    throw new IllegalArgumentException("a job spec must be a JSON object");
                }
                return s;
            }
            if (spec instanceof JsonNode) {
                return MAPPER.writeValueAsString(spec);
            }
            ObjectNode tree = MAPPER.valueToTree(spec);
            return MAPPER.writeValueAsString(tree);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("the job spec is not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    private static <T> T convert(JsonNode n, Class<T> type) {
        try {
            return MAPPER.treeToValue(n, type);
        } catch (JsonProcessingException | IllegalArgumentException e) {
            throw new KilnException("unexpected answer shape for " + type.getSimpleName() + ": " + abbreviate(n.toString()), e);
        }
    }

    private static <T> T convert(JsonNode n, TypeReference<T> type) {
        if (n == null || n.isMissingNode() || n.isNull()) {
            n = MAPPER.createArrayNode();
        }
        try {
            return MAPPER.readerFor(type).readValue(n);
        } catch (IOException | IllegalArgumentException e) {
            throw new KilnException("unexpected answer shape: " + abbreviate(n.toString()), e);
        }
    }

    /** {@code /api/v1/training-jobs/<id>} with the id escaped as a path segment. */
    public static String jobPath(String jobId) {
        if (jobId == null || jobId.isBlank()) {
            throw new IllegalArgumentException("job id is empty");
        }
        return JOBS + "/" + URLEncoder.encode(jobId.trim(), StandardCharsets.UTF_8).replace("+", "%20");
    }

    private static String pathOnly(String pathAndQuery) {
        int q = pathAndQuery.indexOf('?');
        return q < 0 ? pathAndQuery : pathAndQuery.substring(0, q);
    }

    static String abbreviate(String s) {
        return s.length() <= 300 ? s : s.substring(0, 300) + "...";
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KilnException("interrupted", e);
        }
    }

    /** Converts any JSON-able object to a Map (handy for tests and scripting). */
    public static Map<String, Object> toMap(Object o) {
        return MAPPER.convertValue(o, new TypeReference<Map<String, Object>>() { });
    }

    @Override
    public String toString() {
        return "KilnClient{" + apiUrl + "}";
    }
}
