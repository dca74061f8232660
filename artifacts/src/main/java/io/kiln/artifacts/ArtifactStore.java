package io.kiln.artifacts;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;

/**
 * Where datasets, checkpoints, models and reports live, addressed by URI. The local-directory
 * store serves {@code file:} URIs; an S3 store will serve {@code s3:} ones behind the same methods.
 *
 * <p>Keys are relative paths such as {@code jobs/job-1/model/model.params}; {@link #uri(String)}
 * turns one into the absolute URI that jobs record and users see.
 */
public interface ArtifactStore {

  /** The absolute URI of a key under this store's root. */
  URI uri(String key);

  /** Writes (replacing) an artifact atomically: readers see the old or the new bytes, never half. */
  void put(URI uri, byte[] bytes) throws IOException;

  /** Opens a stream whose bytes become the artifact when it is closed (atomically, as {@link #put}). */
  OutputStream create(URI uri) throws IOException;

  /** Copies a local file or directory tree into the store under {@code uri}. */
  void upload(Path local, URI uri) throws IOException;

  InputStream open(URI uri) throws IOException;

  byte[] read(URI uri) throws IOException;

  boolean exists(URI uri);

  /** Artifacts (files, recursively) under a prefix URI, sorted. */
  List<URI> list(URI prefix) throws IOException;

  /**
   * A local path holding the artifact's bytes: the file itself for a local store; a cached
   * download for remote stores. Lets libraries that want files (DJL, XGBoost) read artifacts.
   */
  Path localPath(URI uri) throws IOException;

  /** Opens the store that serves URIs under {@code root} (e.g. {@code file:/var/kiln/artifacts}). */
  static ArtifactStore forRoot(URI root) {
    String scheme = root.getScheme();
    if (scheme == null || scheme.equals("file")) return new LocalArtifactStore(Path.of(root.getPath()));
    throw new IllegalArgumentException("unsupported artifact store URI scheme '" + scheme + "' in " + root
        + " (supported: file)");
  }
}
