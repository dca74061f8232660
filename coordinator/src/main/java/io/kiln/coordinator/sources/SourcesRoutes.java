package io.kiln.coordinator.sources;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiJson;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpEntity;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.stream.javadsl.StreamConverters;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code PUT/GET/HEAD /api/v1/sources/<sha256>[.tar.gz|.tar|.jar]}: user code (script-mode source
 * archives, Java model jars) uploaded into the coordinator's artifact store, content-addressed, so a
 * CLI that does not share the cluster's file system can submit code (docs/api.md). The body's SHA-256
 * must match the name (400 otherwise; nothing is kept); the same content is stored once (200 the
 * second time, 201 the first). The upload streams to a temporary file that becomes the artifact only
 * when complete, so workers never see half an archive. Authentication is the API's bearer token.
 */
public final class SourcesRoutes extends AllDirectives implements ApiExtension {
  private static final Logger log = LoggerFactory.getLogger(SourcesRoutes.class);
  /** The hex digest and an optional kind; no kind means a {@code .tar.gz} (the CLI's source package). */
  static final Pattern NAME = Pattern.compile("([0-9a-f]{64})(\\.tar\\.gz|\\.tar|\\.jar)?");
  public static final String FOLDER = "sources/";

  private final ArtifactStore store;
  private final URI root;
  private final long maxBytes;
  private final Executor blocking;
  private final ActorSystem<?> system;

  /** {@code artifactsRoot}: the coordinator's {@code kiln.artifacts.root} (a folder URI). */
  public SourcesRoutes(ActorSystem<?> system, String artifactsRoot, long maxBytes) {
    this.root = URI.create(artifactsRoot.endsWith("/") ? artifactsRoot : artifactsRoot + "/");
    this.store = ArtifactStore.forRoot(root);
    this.maxBytes = maxBytes;
    this.blocking = system.dispatchers().lookup(DispatcherSelector.blocking());
    this.system = system;
  }

  @Override
  public Route routes(String user) {
    return pathPrefix(PathMatchers.segment("sources"), () -> path(PathMatchers.segment(), name -> {
      Matcher m = NAME.matcher(name);
      if (!m.matches()) {
        return complete(ApiJson.response(StatusCodes.BAD_REQUEST, ApiJson.error("'" + name + "' is not <sha256>"
            + "[.tar.gz|.tar|.jar] (64 lower-case hex digits of the content's SHA-256)", List.of())));
      }
      String digest = m.group(1);
      String key = FOLDER + digest + (m.group(2) == null ? ".tar.gz" : m.group(2));
      URI uri = root.resolve(key);
      // file:///x, as the CLI and workers write local paths
      String shown = "file".equals(uri.getScheme()) ? java.nio.file.Path.of(uri.getPath()).toUri().toString()
          : uri.toString();
      return concat(
          put(() -> withSizeLimit(maxBytes, () -> extractRequestEntity(entity -> {
            if (entity.getContentLengthOption().orElse(0L) > maxBytes) return complete(tooLarge());
            return onSuccess(store(entity, digest, uri), result -> {
                if (result.tooLarge()) return complete(tooLarge());
                if (result.error() != null) {
                  return complete(ApiJson.response(StatusCodes.BAD_REQUEST, ApiJson.error(result.error(), List.of())));
                }
                log.info("source {} stored by {} ({} bytes{})", key, user, result.bytes(), result.created() ? "" : ", already there");
                return complete(ApiJson.response(result.created() ? StatusCodes.CREATED : StatusCodes.OK, ApiJson.obj()
                    .put("uri", shown).put("sha256", digest).put("bytes", result.bytes())));
              });
          }))),
          head(() -> complete(store.exists(uri) ? StatusCodes.OK : StatusCodes.NOT_FOUND)),
          get(() -> {
            if (!store.exists(uri)) {
              return complete(ApiJson.response(StatusCodes.NOT_FOUND, ApiJson.error("no source " + key, List.of())));
            }
            try {
              java.nio.file.Path p = store.localPath(uri);
              return complete(HttpEntities.create(ContentTypes.APPLICATION_OCTET_STREAM, p.toFile()));
            } catch (IOException e) {
              return complete(ApiJson.response(StatusCodes.NOT_FOUND, ApiJson.error("no source " + key, List.of())));
            }
          }));
    }));
  }

  record Stored(boolean created, long bytes, String error, boolean tooLarge) {
    Stored(boolean created, long bytes, String error) {
      this(created, bytes, error, false);
    }
  }

  private org.apache.pekko.http.javadsl.model.HttpResponse tooLarge() {
    return ApiJson.response(StatusCodes.PAYLOAD_TOO_LARGE, ApiJson.error("the upload is larger than "
        + (maxBytes >> 20) + " MB (kiln.api.max-source-size)", List.of()));
  }

  /** Streams the body into the store while hashing it; the artifact appears only if the digest matches. */
  private CompletionStage<Stored> store(HttpEntity entity, String digest, URI uri) {
    InputStream in = entity.getDataBytes().runWith(StreamConverters.asInputStream(Duration.ofSeconds(60)), system);
    return CompletableFuture.supplyAsync(() -> {
      try (in) {
        if (store.exists(uri)) {
          long n = in.transferTo(OutputStream.nullOutputStream());
          return new Stored(false, n, null);
        }
        URI tmp = uri.resolve("." + digest + "-" + Long.toHexString(System.nanoTime()) + ".upload");
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        long n = 0;
        try (OutputStream out = store.create(tmp)) {
          byte[] buf = new byte[1 << 16];
          for (int r; (r = in.read(buf)) > 0; n += r) {
            sha.update(buf, 0, r);
            out.write(buf, 0, r);
          }
        }
        String actual = HexFormat.of().formatHex(sha.digest());
        java.nio.file.Path tmpPath = store.localPath(tmp);
        if (!actual.equals(digest)) {
          java.nio.file.Files.deleteIfExists(tmpPath);
          return new Stored(false, n, "sha256 mismatch: the body's SHA-256 is " + actual + ", the URL names " + digest
              + " (upload interrupted or wrong digest); nothing was stored");
        }
        java.nio.file.Files.move(tmpPath, tmpPath.resolveSibling(java.nio.file.Path.of(uri.getPath()).getFileName()),
            java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return new Stored(true, n, null);
      } catch (IOException | java.security.NoSuchAlgorithmException | RuntimeException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
          if (t instanceof org.apache.pekko.http.scaladsl.model.EntityStreamSizeException) return new Stored(false, 0, null, true);
        }
        return new Stored(false, 0, String.format(Locale.ROOT, "cannot store the upload: %s", e.getMessage()));
      }
    }, blocking);
  }
}
