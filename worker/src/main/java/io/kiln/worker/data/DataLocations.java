package io.kiln.worker.data;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Turns channel URIs ({@code file:/data/x}, {@code file:///data/x} or a plain absolute path) into local paths. */
public final class DataLocations {
  private DataLocations() {}

  public static Path toPath(String channel, String uri) throws DataException {
    if (uri == null || uri.isBlank()) throw new DataException("channel '" + channel + "' has no URI");
    String s = uri.trim();
    if (s.startsWith("/")) return Path.of(s).normalize();
    URI u;
    try {
      u = new URI(s);
    } catch (URISyntaxException e) {
      throw new DataException("channel '" + channel + "': invalid URI '" + s + "': " + e.getMessage());
    }
    if (u.getScheme() == null) {
      throw new DataException("channel '" + channel + "': '" + s + "' is neither an absolute path nor a file: URI");
    }
    if (!u.getScheme().equals("file")) {
      throw new DataException("channel '" + channel + "': unsupported URI scheme '" + u.getScheme() + "' in " + s
          + " (supported: file: URIs and absolute paths)");
    }
    if (u.getPath() == null || u.getPath().isEmpty()) {
      throw new DataException("channel '" + channel + "': file: URI without a path: " + s);
    }
    return Path.of(u.getPath()).normalize();
  }

  /** The folder a channel points to: the path itself if it is a folder, its parent if it names a file. */
  public static Path directory(String channel, String uri) throws DataException {
    Path p = toPath(channel, uri);
    if (Files.isDirectory(p)) return p;
    if (Files.isRegularFile(p) && p.getParent() != null) return p.getParent();
    throw new DataException("channel '" + channel + "': data directory " + p + " does not exist");
  }
}
