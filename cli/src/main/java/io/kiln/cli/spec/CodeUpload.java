package io.kiln.cli.spec;

import io.kiln.artifacts.ArtifactStore;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.KilnSettings;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Puts user code (a source package, a model jar) where the cluster's workers read it, content-addressed
 * as {@code sources/<sha256><ext>}: straight into the local artifact store when the coordinator is the
 * one of this data dir (its {@code coordinator.json} names the API URL in use), else through the
 * coordinator's {@code PUT /api/v1/sources/<sha256><ext>}.
 */
public final class CodeUpload {
    private CodeUpload() {
    }

    /** Where the code went and how. */
    public record Placed(URI uri, boolean uploaded) {
    }

    /** Whether the API in use is the local cluster of {@code settings}' data dir. */
    public static boolean isLocal(KilnSettings settings) {
        String local = KilnSettings.apiUrlFromCoordinatorFile(settings.dataDir());
        return local != null && strip(local).equals(strip(settings.apiUrl()));
    }

    /**
     * Stores {@code file} (whose SHA-256 is {@code sha256}) as {@code sources/<sha256><ext>}; on
     * {@code dryRun} only says where it would go.
     */
    public static Placed place(Path file, String sha256, String ext, KilnSettings settings, boolean dryRun)
            throws IOException {
        String key = SourcePackage.FOLDER + sha256 + ext;
        Path root = settings.dataDir().resolve("artifacts").toAbsolutePath().normalize();
        if (isLocal(settings) || dryRun) {
            URI uri = root.resolve(key).toUri();
            if (dryRun) return new Placed(uri, !isLocal(settings));
            ArtifactStore store = ArtifactStore.forRoot(root.toUri());
            if (!store.exists(uri)) store.upload(file, uri);
            return new Placed(uri, false);
        }
        String uri = KilnClient.forSettings(settings).uploadSource(file, sha256 + ext);
        return new Placed(URI.create(uri), true);
    }

    /** The hex SHA-256 of a file. */
    public static String sha256(Path file) throws IOException {
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), MessageDigest.getInstance("SHA-256"))) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String strip(String u) {
        String s = u.trim();
        while (s.endsWith("/")) s = s.substring(0, s.length() - 1);
        return s;
    }
}
