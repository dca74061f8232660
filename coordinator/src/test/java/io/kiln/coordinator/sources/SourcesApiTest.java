package io.kiln.coordinator.sources;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import io.kiln.coordinator.CoordinatorMain;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code PUT/GET/HEAD /api/v1/sources/<sha256>} on a real coordinator (H2 journal, HTTP on a socket). */
class SourcesApiTest {
  static final ObjectMapper JSON = new ObjectMapper();
  final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  @TempDir Path dir;

  @Test
  void uploadsAreVerifiedStoredOnceAndReadBack() throws Exception {
    int clusterPort;
    try (ServerSocket s = new ServerSocket(0)) {
      clusterPort = s.getLocalPort();
    }
    CoordinatorMain.Running c = CoordinatorMain.launch(ConfigFactory.parseMap(Map.of("kiln.data-dir", dir.toString(),
        "kiln.api.port", 0, "kiln.cluster.port", clusterPort, "kiln.cluster.seed", "127.0.0.1:" + clusterPort,
        "kiln.api.max-source-size", "1m")));
    try {
      String api = c.apiUrl();
      String token = Files.readString(dir.resolve("token")).trim();
      byte[] body = new byte[300_000];
      new java.util.Random(7).nextBytes(body);
      String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));

      assertEquals(401, send(api, "PUT", "/api/v1/sources/" + sha, body, null).statusCode());

      HttpResponse<byte[]> first = send(api, "PUT", "/api/v1/sources/" + sha, body, token);
      assertEquals(201, first.statusCode(), new String(first.body()));
      JsonNode stored = JSON.readTree(first.body());
      Path file = dir.resolve("artifacts/sources/" + sha + ".tar.gz");
      assertEquals(file.toUri().toString(), URI.create(stored.get("uri").asText()).toString());
      assertArrayEquals(body, Files.readAllBytes(file));
      assertEquals(300_000, stored.get("bytes").asLong());
      assertEquals(200, send(api, "PUT", "/api/v1/sources/" + sha, body, token).statusCode(), "stored once");

      // a jar keeps its kind in the name
      assertEquals(201, send(api, "PUT", "/api/v1/sources/" + sha + ".jar", body, token).statusCode());
      assertTrue(Files.exists(dir.resolve("artifacts/sources/" + sha + ".jar")));

      // a body that is not what the name says is refused and leaves nothing behind
      String other = "0".repeat(64);
      HttpResponse<byte[]> wrong = send(api, "PUT", "/api/v1/sources/" + other, body, token);
      assertEquals(400, wrong.statusCode());
      assertTrue(new String(wrong.body()).contains("sha256 mismatch: the body's SHA-256 is " + sha), new String(wrong.body()));
      try (var files = Files.list(dir.resolve("artifacts/sources"))) {
        assertEquals(2, files.count(), "only the two good uploads are there");
      }
      HttpResponse<byte[]> badName = send(api, "PUT", "/api/v1/sources/abc", body, token);
      assertEquals(400, badName.statusCode());
      assertTrue(new String(badName.body()).contains("64 lower-case hex digits"));
      assertEquals(413, send(api, "PUT", "/api/v1/sources/" + other, new byte[2_000_000], token).statusCode());

      // read back: GET the bytes, HEAD for existence
      HttpResponse<byte[]> got = send(api, "GET", "/api/v1/sources/" + sha, null, token);
      assertEquals(200, got.statusCode());
      assertArrayEquals(body, got.body());
      assertEquals(200, send(api, "HEAD", "/api/v1/sources/" + sha, null, token).statusCode());
      assertEquals(404, send(api, "HEAD", "/api/v1/sources/" + other, null, token).statusCode());
      assertFalse(Files.exists(dir.resolve("artifacts/sources/" + other + ".tar.gz")));
    } finally {
      c.system().terminate();
      c.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  private HttpResponse<byte[]> send(String api, String method, String path, byte[] body, String token) throws Exception {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(api + path)).timeout(Duration.ofSeconds(30))
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
    if (token != null) b.header("Authorization", "Bearer " + token);
    return http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
  }
}
