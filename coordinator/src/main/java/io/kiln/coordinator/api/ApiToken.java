package io.kiln.coordinator.api;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * The API's bearer token. Created on the coordinator's first start in {@code <data-dir>/token}
 * (owner-only permissions), where the CLI finds it. Never logged.
 */
public final class ApiToken {
  private final byte[] token;

  private ApiToken(String token) {
    this.token = token.getBytes(StandardCharsets.UTF_8);
  }

  public static ApiToken loadOrCreate(Path dataDir) throws IOException {
    Path file = dataDir.resolve("token");
    if (Files.exists(file)) {
      String t = Files.readString(file, StandardCharsets.UTF_8).trim();
      if (t.length() < 16) throw new IOException("API token in " + file + " is too short; delete the file to make a new one");
      return new ApiToken(t);
    }
    Files.createDirectories(dataDir);
    byte[] bytes = new byte[32];
    new SecureRandom().nextBytes(bytes);
    String t = "kiln_" + Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    Path tmp = Files.createTempFile(dataDir, ".token", ".tmp");
    try {
      Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
    } catch (UnsupportedOperationException ignored) {
      // not a POSIX file system: rely on the data directory's permissions
    }
    Files.writeString(tmp, t + "\n", StandardCharsets.UTF_8);
    Files.move(tmp, file);
    return new ApiToken(t);
  }

  /** Constant-time check of an {@code Authorization} header value. */
  public boolean accepts(String authorizationHeader) {
    if (authorizationHeader == null || !authorizationHeader.startsWith("Bearer ")) return false;
    byte[] given = authorizationHeader.substring("Bearer ".length()).trim().getBytes(StandardCharsets.UTF_8);
    return MessageDigest.isEqual(given, token);
  }

  /** Why a request with this {@code Authorization} header value (null: none) was refused (the 401's message). */
  public static String refusal(String authorizationHeader) {
    return authorizationHeader != null ? "invalid API token"
        : "missing bearer token: send 'Authorization: Bearer <token>' (the token is in the coordinator's data dir, file 'token')";
  }

  /** The token itself, for processes the coordinator starts (endpoint replicas check the same one). */
  public String value() {
    return new String(token, StandardCharsets.UTF_8);
  }

  @Override
  public String toString() {
    return "ApiToken(****)";
  }
}
