package io.kiln.worker.script;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.zip.GZIPInputStream;

/**
 * Unpacks a source archive ({@code sourcedir.tar.gz} as the SageMaker SDK and {@code kiln train
 * --source-dir} make it; plain tar too) into the code directory. Reads ustar, GNU long names and
 * pax {@code path} headers; keeps the owner's execute bit; refuses entries that would land outside
 * the directory. Links and special files are skipped (and listed in {@link Result#skipped()}).
 */
final class SourceArchive {
  private static final int BLOCK = 512;

  private SourceArchive() {}

  record Result(int files, long bytes, List<String> skipped) {}

  static Result extract(Path archive, Path dest) throws IOException {
    try (InputStream raw = new BufferedInputStream(Files.newInputStream(archive))) {
      raw.mark(2);
      int b0 = raw.read();
      int b1 = raw.read();
      raw.reset();
      InputStream in = b0 == 0x1f && b1 == 0x8b ? new GZIPInputStream(raw, 65536) : raw;
      return extract(in, dest, archive.toString());
    }
  }

  static Result extract(InputStream in, Path dest, String source) throws IOException {
    Path root = dest.toAbsolutePath().normalize();
    Files.createDirectories(root);
    byte[] header = new byte[BLOCK];
    String longName = null;
    String paxPath = null;
    int files = 0;
    long bytes = 0;
    List<String> skipped = new ArrayList<>();
    while (true) {
      if (!readBlock(in, header)) break; // end of stream without the two zero blocks: accept
      if (isZero(header)) break;
      if (!checksumOk(header)) throw new IOException(source + ": not a tar archive (bad header checksum)");
      char type = (char) header[156];
      long size = octal(header, 124, 12);
      String name = cString(header, 0, 100);
      // POSIX ustar ("ustar\0" "00") has a name prefix; GNU's "ustar  \0" uses those bytes for other fields
      boolean posix = "ustar".equals(cString(header, 257, 6)) && header[262] == 0;
      String prefix = posix ? cString(header, 345, 155) : "";
      if (!prefix.isEmpty()) name = prefix + "/" + name;
      if (longName != null) name = longName;
      if (paxPath != null) name = paxPath;
      int mode = (int) octal(header, 100, 8);
      switch (type) {
        case 'L':
          longName = stripNul(new String(readData(in, size), StandardCharsets.UTF_8));
          continue;
        case 'x':
          paxPath = paxPathOf(readData(in, size));
          continue;
        case 'g':
          readData(in, size);
          continue;
        default:
          break;
      }
      longName = null;
      paxPath = null;
      String rel = name;
      while (rel.startsWith("./")) rel = rel.substring(2);
      if (rel.isEmpty() || rel.equals(".")) {
        skip(in, size);
        continue;
      }
      Path target = root.resolve(rel).normalize();
      if (rel.startsWith("/") || !target.startsWith(root)) {
        throw new IOException(source + ": entry '" + name + "' would be written outside the code directory");
      }
      if (type == '0' || type == '\0' || type == '7') {
        Files.createDirectories(target.getParent());
        try (OutputStream out = Files.newOutputStream(target)) {
          copy(in, out, size);
        }
        skip(in, padding(size));
        if ((mode & 0100) != 0) setExecutable(target);
        files++;
        bytes += size;
      } else if (type == '5') {
        Files.createDirectories(target);
        skip(in, size + padding(size));
      } else {
        skipped.add(rel + " (" + describe(type) + ")");
        skip(in, size + padding(size));
      }
    }
    return new Result(files, bytes, List.copyOf(skipped));
  }

  private static String describe(char type) {
    switch (type) {
      case '1': return "hard link";
      case '2': return "symbolic link";
      case '3': case '4': return "device";
      case '6': return "fifo";
      default: return "tar entry type '" + type + "'";
    }
  }

  private static void setExecutable(Path p) {
    try {
      Set<PosixFilePermission> perms = EnumSet.copyOf(Files.getPosixFilePermissions(p));
      perms.add(PosixFilePermission.OWNER_EXECUTE);
      Files.setPosixFilePermissions(p, perms);
    } catch (IOException | UnsupportedOperationException ignored) {
      // best effort: the runner makes the entry point executable itself when it needs to
    }
  }

  private static String paxPathOf(byte[] data) {
    // records: "<len> key=value\n"
    String s = new String(data, StandardCharsets.UTF_8);
    String found = null;
    int i = 0;
    while (i < s.length()) {
      int sp = s.indexOf(' ', i);
      if (sp < 0) break;
      int len;
      try {
        len = Integer.parseInt(s.substring(i, sp));
      } catch (NumberFormatException e) {
        break;
      }
      // len counts bytes; records here are ASCII in practice, fall back to the next newline otherwise
      int end = s.indexOf('\n', sp);
      if (end < 0) break;
      String rec = s.substring(sp + 1, end);
      int eq = rec.indexOf('=');
      if (eq > 0 && rec.substring(0, eq).equals("path")) found = rec.substring(eq + 1);
      i = Math.max(end + 1, i + Math.min(len, 1));
    }
    return found;
  }

  private static boolean readBlock(InputStream in, byte[] block) throws IOException {
    int n = in.readNBytes(block, 0, BLOCK);
    if (n == 0) return false;
    if (n < BLOCK) throw new EOFException("truncated tar archive");
    return true;
  }

  private static byte[] readData(InputStream in, long size) throws IOException {
    if (size > 16 * 1024 * 1024) throw new IOException("tar extension header of " + size + " bytes");
    byte[] data = in.readNBytes((int) size);
    if (data.length < size) throw new EOFException("truncated tar archive");
    skip(in, padding(size));
    return data;
  }

  private static void copy(InputStream in, OutputStream out, long size) throws IOException {
    byte[] buf = new byte[65536];
    long left = size;
    while (left > 0) {
      int n = in.read(buf, 0, (int) Math.min(buf.length, left));
      if (n < 0) throw new EOFException("truncated tar archive");
      out.write(buf, 0, n);
      left -= n;
    }
  }

  private static void skip(InputStream in, long n) throws IOException {
    long left = n;
    while (left > 0) {
      long s = in.skip(left);
      if (s <= 0) {
        if (in.read() < 0) throw new EOFException("truncated tar archive");
        s = 1;
      }
      left -= s;
    }
  }

  private static long padding(long size) {
    long r = size % BLOCK;
    return r == 0 ? 0 : BLOCK - r;
  }

  private static boolean isZero(byte[] b) {
    for (byte x : b) {
      if (x != 0) return false;
    }
    return true;
  }

  private static boolean checksumOk(byte[] h) {
    long stored = octal(h, 148, 8);
    long sum = 0;
    for (int i = 0; i < BLOCK; i++) sum += (i >= 148 && i < 156) ? ' ' : (h[i] & 0xff);
    return sum == stored;
  }

  private static long octal(byte[] b, int off, int len) {
    if ((b[off] & 0x80) != 0) { // GNU base-256 for large sizes
      long v = b[off] & 0x7f;
      for (int i = 1; i < len; i++) v = (v << 8) | (b[off + i] & 0xff);
      return v;
    }
    long v = 0;
    for (int i = off; i < off + len; i++) {
      byte c = b[i];
      if (c == 0 || c == ' ') {
        if (v != 0) break;
        continue;
      }
      if (c < '0' || c > '7') break;
      v = v * 8 + (c - '0');
    }
    return v;
  }

  private static String cString(byte[] b, int off, int len) {
    int end = off;
    while (end < off + len && b[end] != 0) end++;
    return new String(b, off, end - off, StandardCharsets.UTF_8);
  }

  private static String stripNul(String s) {
    int i = s.indexOf('\0');
    return i < 0 ? s : s.substring(0, i);
  }
}
