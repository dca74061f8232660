package io.kiln.cli.spec;

import io.kiln.artifacts.ArtifactStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitOption;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.GZIPOutputStream;

/**
 * Script mode's source package: a folder (or a single entry-point file) as a {@code .tar.gz},
 * stored content-addressed at {@code <artifact root>/sources/<sha256>.tar.gz}, where workers unpack
 * it (the job's {@code sagemaker_submit_directory}).
 *
 * <p>The archive is reproducible: entries sorted by path, mtime 0, owner 0/0, mode 0644 (0755 for
 * files with the owner's execute bit), so the same source gives the same name and is stored once.
 * {@code .git} folders are left out; symbolic links to files are stored as the files they point to,
 * links to folders are skipped. Paths longer than 99 bytes use GNU long-name entries.
 */
public final class SourcePackage {
    /** Where packaged sources go, relative to the artifact store's root. */
    public static final String FOLDER = "sources/";
    private static final int BLOCK = 512;

    private final Path archive;
    private final String sha256;
    private final int files;
    private final long bytes;

    private SourcePackage(Path archive, String sha256, int files, long bytes) {
        this.archive = archive;
        this.sha256 = sha256;
        this.files = files;
        this.bytes = bytes;
    }

    /** The temporary .tar.gz; {@link #store} copies it into the artifact store, {@link #delete} removes it. */
    public Path archive() {
        return archive;
    }

    public String sha256() {
        return sha256;
    }

    public int files() {
        return files;
    }

    /** Size of the packaged files (uncompressed). */
    public long bytes() {
        return bytes;
    }

    public long archiveBytes() throws IOException {
        return Files.size(archive);
    }

    /** The artifact key: {@code sources/<sha256>.tar.gz}. */
    public String key() {
        return FOLDER + sha256 + ".tar.gz";
    }

    /** The URI the package has (or will have) in the store rooted at {@code artifactRoot}. */
    public URI uriIn(Path artifactRoot) {
        return artifactRoot.toAbsolutePath().normalize().resolve(key()).toUri();
    }

    /** Copies the archive into the store under {@link #key()} (unless it is there already); returns its URI. */
    public URI store(Path artifactRoot) throws IOException {
        ArtifactStore store = ArtifactStore.forRoot(artifactRoot.toAbsolutePath().normalize().toUri());
        URI uri = store.uri(key());
        if (!store.exists(uri)) store.upload(archive, uri);
        return uri;
    }

    public void delete() {
        try {
            Files.deleteIfExists(archive);
        } catch (IOException ignored) {
            // a temporary file
        }
    }

    /** Packages a folder (all of it but {@code .git}) or a single file (stored under its file name). */
    public static SourcePackage of(Path source) throws IOException {
        Path src = source.toAbsolutePath().normalize();
        List<Entry> entries = new ArrayList<>();
        if (Files.isDirectory(src)) {
            collect(src, entries);
        } else if (Files.isRegularFile(src)) {
            entries.add(new Entry(src.getFileName().toString(), src));
        } else {
            throw new JobSpecException("source " + source + " does not exist");
        }
        entries.sort((a, b) -> a.name.compareTo(b.name));
        Path tmp = Files.createTempFile("kiln-source-", ".tar.gz");
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        long total = 0;
        try (OutputStream file = Files.newOutputStream(tmp);
             DigestOutputStream digest = new DigestOutputStream(file, sha);
             GZIPOutputStream gz = new GZIPOutputStream(digest, 65536)) {
            // GZIPOutputStream writes no name or time into its header (mtime 0): the bytes depend on the content only
            for (Entry e : entries) {
                total += writeEntry(gz, e);
            }
            gz.write(new byte[2 * BLOCK]);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        return new SourcePackage(tmp, HexFormat.of().formatHex(sha.digest()), entries.size(), total);
    }

    private record Entry(String name, Path file) {}

    private static void collect(Path root, List<Entry> out) throws IOException {
        Files.walkFileTree(root, EnumSet.noneOf(FileVisitOption.class), Integer.MAX_VALUE, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) {
                if (!dir.equals(root) && dir.getFileName().toString().equals(".git")) return FileVisitResult.SKIP_SUBTREE;
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                // symbolic links are not followed by the walk: a link to a file is stored as that file
                if (attrs.isRegularFile() || (attrs.isSymbolicLink() && Files.isRegularFile(file))) {
                    String rel = root.relativize(file).toString().replace('\\', '/');
                    if (!rel.equals(".git") && !rel.startsWith(".git/")) out.add(new Entry(rel, file));
                }
                return FileVisitResult.CONTINUE;
            }
        });
    }

    private static long writeEntry(OutputStream out, Entry e) throws IOException {
        byte[] name = e.name.getBytes(StandardCharsets.UTF_8);
        if (name.length > 99) {
            byte[] longName = (e.name + "\0").getBytes(StandardCharsets.UTF_8);
            out.write(header("././@LongLink", 'L', longName.length, 0644));
            out.write(longName);
            pad(out, longName.length);
        }
        long size = Files.size(e.file);
        int mode = Files.isExecutable(e.file) ? 0755 : 0644;
        out.write(header(e.name, '0', size, mode));
        long copied;
        try (InputStream in = Files.newInputStream(e.file)) {
            copied = in.transferTo(out);
        }
        if (copied != size) throw new IOException(e.file + " changed while it was packaged");
        pad(out, size);
        return size;
    }

    private static void pad(OutputStream out, long size) throws IOException {
        int r = (int) (size % BLOCK);
        if (r != 0) out.write(new byte[BLOCK - r]);
    }

    private static byte[] header(String name, char type, long size, int mode) {
        byte[] h = new byte[BLOCK];
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(n, 0, h, 0, Math.min(n.length, 99));
        octal(h, 100, 8, mode);
        octal(h, 108, 8, 0); // uid
        octal(h, 116, 8, 0); // gid
        if (size > 077777777777L) throw new JobSpecException("a source file is larger than 8 GiB: " + name);
        octal(h, 124, 12, size);
        octal(h, 136, 12, 0); // mtime
        h[156] = (byte) type;
        byte[] magic = "ustar  \0".getBytes(StandardCharsets.US_ASCII); // GNU magic: long names by 'L' entries
        System.arraycopy(magic, 0, h, 257, magic.length);
        for (int i = 148; i < 156; i++) h[i] = ' ';
        long sum = 0;
        for (byte b : h) sum += b & 0xff;
        byte[] chk = String.format("%06o", sum).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(chk, 0, h, 148, 6);
        h[154] = 0;
        h[155] = ' ';
        return h;
    }

    private static void octal(byte[] h, int off, int len, long v) {
        byte[] digits = String.format("%0" + (len - 1) + "o", v).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(digits, 0, h, off, len - 1);
        h[off + len - 1] = 0;
    }
}
