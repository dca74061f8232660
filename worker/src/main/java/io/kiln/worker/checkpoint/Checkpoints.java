package io.kiln.worker.checkpoint;

import io.kiln.artifacts.ArtifactStore;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.CRC32;

/**
 * Finding, reading and deleting checkpoints. The layout of a job's checkpoints:
 *
 * <pre>
 * &lt;job_artifacts_uri&gt;/checkpoints/step-00000500/checkpoint.json   (written last: the folder is complete)
 *                                   step-00000500/state.bin
 * </pre>
 *
 * A {@code step-*} folder without {@code checkpoint.json} is incomplete (a write was interrupted)
 * and is never resumed from.
 */
public final class Checkpoints {
  public static final String FOLDER = "checkpoints/";
  private static final Pattern STEP_FOLDER = Pattern.compile("step-(\\d+)");

  private Checkpoints() {}

  /** A checkpoint folder in a checkpoints folder, and whether it is complete. */
  public record Entry(URI uri, long step, boolean complete) {}

  /** The folder name of the checkpoint taken after global step {@code step}: {@code step-%08d}. */
  public static String folderName(long step) {
    return String.format(Locale.ROOT, "step-%08d", step);
  }

  /**
   * A {@code resume_from} value as a URI: an absolute or relative path, or a URI ({@code file:...}).
   */
  public static URI toUri(String s) {
    String t = s.trim();
    if (t.isEmpty()) throw new IllegalArgumentException("empty checkpoint location");
    if (t.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*")) return folder(URI.create(t));
    return folder(Path.of(t).toAbsolutePath().normalize().toUri());
  }

  /**
   * The checkpoint folder that {@code location} means: a checkpoint folder itself (it has
   * checkpoint.json), or the newest complete checkpoint in a checkpoints folder, or in a job folder's
   * {@code checkpoints/} (a path to a checkpoint.json file means its folder).
   *
   * @throws CheckpointException naming {@code location}: it does not exist, is an incomplete
   *     checkpoint, or holds no complete checkpoint
   */
  public static URI resolve(String location) throws CheckpointException {
    URI uri;
    try {
      uri = toUri(location);
    } catch (IllegalArgumentException e) {
      throw new CheckpointException("'" + location + "' is not a path or URI: " + e.getMessage(), e);
    }
    String s = uri.toString();
    if (s.endsWith("/" + CheckpointMetadata.JSON_FILE + "/")) {
      uri = folder(URI.create(s.substring(0, s.length() - CheckpointMetadata.JSON_FILE.length() - 1)));
    }
    if (isFile(uri) && !Files.isDirectory(Path.of(uri))) {
      throw new CheckpointException(uri + ": no such checkpoint folder (it does not exist)");
    }
    ArtifactStore store = store(uri);
    if (store.exists(child(uri, CheckpointMetadata.JSON_FILE))) return uri;
    if (STEP_FOLDER.matcher(lastSegment(uri)).matches()) {
      throw new CheckpointException(uri + ": incomplete checkpoint: it has no " + CheckpointMetadata.JSON_FILE
          + " (the write never finished)");
    }
    try {
      Entry latest = latestComplete(store, uri);
      if (latest == null && store.exists(child(uri, FOLDER))) latest = latestComplete(store, child(uri, FOLDER));
      if (latest == null) {
        throw new CheckpointException(uri + ": no complete checkpoint in it (looked for step-*/"
            + CheckpointMetadata.JSON_FILE + " there and under " + FOLDER + ")");
      }
      return latest.uri();
    } catch (CheckpointException e) {
      throw e;
    } catch (IOException e) {
      throw new CheckpointException(uri + ": cannot list checkpoints: " + e.getMessage(), e);
    }
  }

  /** Where a job resumes: the checkpoint asked for, or a stand-in when that one is gone. */
  public record Resumption(URI uri, String fallbackReason) {}

  /**
   * {@link #resolve} for a job resuming after a restart. The coordinator names the newest checkpoint
   * it knows of, but an earlier attempt of the same job that was still running (a rank that did not
   * report back after a coordinator restart) may have moved on and, by retention, deleted it. Then
   * the newest complete checkpoint in the same checkpoints folder is as good a place to resume (a
   * position is in samples, the accounting travels with it), so it is used instead, with the reason.
   *
   * @throws CheckpointException when neither the named checkpoint nor a sibling is usable
   */
  public static Resumption resolveForResume(String location) throws CheckpointException {
    try {
      return new Resumption(resolve(location), "");
    } catch (CheckpointException gone) {
      URI uri;
      try {
        uri = folder(toUri(location));
      } catch (IllegalArgumentException e) {
        throw gone;
      }
      if (!STEP_FOLDER.matcher(lastSegment(uri)).matches()) throw gone;
      URI parent = uri.resolve("..");
      try {
        Entry latest = latestComplete(store(parent), parent);
        if (latest == null) throw gone;
        return new Resumption(latest.uri(), gone.getMessage() + "; the newest complete checkpoint beside it is used");
      } catch (IOException e) {
        throw gone;
      }
    }
  }

  /** The checkpoint folders directly under {@code checkpointsFolder}, oldest first (by step). */
  public static List<Entry> list(ArtifactStore store, URI checkpointsFolder) throws IOException {
    URI base = folder(checkpointsFolder);
    Map<Long, Entry> found = new TreeMap<>();
    if (isFile(base)) {
      // Straight from the file system: also sees empty folders (an interrupted write's leftovers).
      Path dir = Path.of(base);
      if (!Files.isDirectory(dir)) return List.of();
      try (Stream<Path> children = Files.list(dir)) {
        for (Path p : (Iterable<Path>) children::iterator) {
          Matcher m = STEP_FOLDER.matcher(p.getFileName().toString());
          if (!m.matches() || !Files.isDirectory(p)) continue;
          long step = Long.parseLong(m.group(1));
          found.put(step, new Entry(folder(p.toUri()), step,
              Files.isRegularFile(p.resolve(CheckpointMetadata.JSON_FILE))));
        }
      }
    } else {
      String prefix = base.toString();
      for (URI f : store.list(base)) {
        String rest = f.toString().substring(prefix.length());
        int slash = rest.indexOf('/');
        if (slash < 0) continue;
        Matcher m = STEP_FOLDER.matcher(rest.substring(0, slash));
        if (!m.matches()) continue;
        long step = Long.parseLong(m.group(1));
        boolean complete = rest.substring(slash + 1).equals(CheckpointMetadata.JSON_FILE);
        Entry old = found.get(step);
        found.put(step, new Entry(child(base, rest.substring(0, slash + 1)), step,
            complete || (old != null && old.complete())));
      }
    }
    return new ArrayList<>(found.values());
  }

  /** The newest complete checkpoint under {@code checkpointsFolder}, or null. */
  public static Entry latestComplete(ArtifactStore store, URI checkpointsFolder) throws IOException {
    Entry latest = null;
    for (Entry e : list(store, checkpointsFolder)) if (e.complete()) latest = e;
    return latest;
  }

  /**
   * Reads and verifies the checkpoint in {@code folder}: checkpoint.json (format, layout), then
   * state.bin (exact size, CRC32).
   *
   * @throws CheckpointException naming the folder or file and the problem
   */
  public static Checkpoint load(URI folder) throws CheckpointException {
    URI base = folder(folder);
    if (isFile(base) && !Files.isDirectory(Path.of(base))) {
      throw new CheckpointException(base + ": no such checkpoint folder (it does not exist)");
    }
    ArtifactStore store = store(base);
    URI jsonUri = child(base, CheckpointMetadata.JSON_FILE);
    URI dataUri = child(base, CheckpointMetadata.DATA_FILE);
    String json;
    try {
      json = new String(store.read(jsonUri), StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(base + ": incomplete checkpoint: it has no " + CheckpointMetadata.JSON_FILE
          + " (the write never finished)", e);
    } catch (IOException e) {
      throw new CheckpointException(jsonUri + ": cannot read: " + e.getMessage(), e);
    }
    CheckpointMetadata meta = CheckpointMetadata.fromJson(json, jsonUri.toString());
    if (meta.dataBytes() > Integer.MAX_VALUE - 8) {
      throw new CheckpointException(dataUri + ": " + meta.dataBytes() + " bytes: checkpoints over 2 GiB are not "
          + "supported yet");
    }
    ByteBuffer data = ByteBuffer.allocateDirect((int) meta.dataBytes()).order(ByteOrder.LITTLE_ENDIAN);
    try (InputStream in = store.open(dataUri)) {
      byte[] chunk = new byte[1 << 20];
      int n;
      while ((n = in.read(chunk)) > 0) {
        if (n > data.remaining()) {
          throw new CheckpointException(dataUri + ": longer than the " + meta.dataBytes() + " bytes "
              + CheckpointMetadata.JSON_FILE + " announces: the checkpoint is corrupt");
        }
        data.put(chunk, 0, n);
      }
    } catch (NoSuchFileException e) {
      throw new CheckpointException(dataUri + ": missing (" + CheckpointMetadata.JSON_FILE
          + " is there): the checkpoint is corrupt", e);
    } catch (CheckpointException e) {
      throw e;
    } catch (IOException e) {
      throw new CheckpointException(dataUri + ": cannot read: " + e.getMessage(), e);
    }
    if (data.hasRemaining()) {
      throw new CheckpointException(dataUri + ": truncated: " + data.position() + " bytes, "
          + CheckpointMetadata.JSON_FILE + " announces " + meta.dataBytes() + ": the checkpoint is corrupt");
    }
    data.flip();
    CRC32 crc = new CRC32();
    crc.update(data.duplicate());
    if (crc.getValue() != meta.crc32()) {
      throw new CheckpointException(String.format(Locale.ROOT,
          "%s: CRC32 mismatch (%s says %08x, the data has %08x): the checkpoint is corrupt", dataUri,
          CheckpointMetadata.JSON_FILE, meta.crc32(), crc.getValue()));
    }
    return new Checkpoint(base, meta, data.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN));
  }

  /**
   * Deletes a checkpoint folder ({@code file:} URIs only: the artifact store has no delete);
   * checkpoint.json goes first, so a half-deleted folder reads as incomplete, never as corrupt.
   *
   * @return false if the URI is not a {@code file:} URI (nothing deleted)
   */
  public static boolean delete(URI checkpointFolder) throws IOException {
    if (!isFile(checkpointFolder)) return false;
    Path dir = Path.of(folder(checkpointFolder));
    if (!Files.exists(dir)) return true;
    Files.deleteIfExists(dir.resolve(CheckpointMetadata.JSON_FILE));
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
    }
    return true;
  }

  /**
   * {@code folder.resolve(name)}, kept in {@code file:///} form ({@link URI#resolve} drops the empty
   * authority and gives {@code file:/...}).
   */
  public static URI child(URI folder, String name) {
    URI u = folder.resolve(name);
    if (!isFile(u)) return u;
    String s = Path.of(u.getPath()).toUri().toString();
    if (name.endsWith("/") && !s.endsWith("/")) s += "/";
    return URI.create(s);
  }

  static boolean isFile(URI uri) {
    return uri.getScheme() == null || uri.getScheme().equals("file");
  }

  /** {@code uri} with a trailing slash, {@code file:} URIs as {@code file:///...}. */
  static URI folder(URI uri) {
    URI u = uri;
    if (isFile(u)) {
      String path = u.getPath();
      if (path == null || path.isEmpty()) throw new IllegalArgumentException("not a folder URI: " + uri);
      String s = Path.of(path).normalize().toUri().toString();
      u = URI.create(s);
    }
    String s = u.toString();
    return s.endsWith("/") ? u : URI.create(s + "/");
  }

  private static ArtifactStore store(URI folder) throws CheckpointException {
    try {
      return ArtifactStore.forRoot(folder);
    } catch (RuntimeException e) {
      throw new CheckpointException(folder + ": " + e.getMessage(), e);
    }
  }

  private static String lastSegment(URI folder) {
    String s = folder.getPath();
    if (s == null) s = folder.toString();
    if (s.endsWith("/")) s = s.substring(0, s.length() - 1);
    return s.substring(s.lastIndexOf('/') + 1);
  }
}
