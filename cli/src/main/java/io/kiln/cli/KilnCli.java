package io.kiln.cli;

import io.kiln.cli.local.LocalClusterException;
import io.kiln.cli.spec.JobSpecException;
import io.kiln.sdk.KilnApiException;
import io.kiln.sdk.KilnConnectionException;
import io.kiln.sdk.KilnException;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code kiln}: the command line of Kiln. Run through the {@code ./kiln} launcher, which builds the
 * project when needed and sets {@code -Dkiln.home}. Exit codes: see {@link ExitCodes}.
 */
@Command(name = "kiln",
        mixinStandardHelpOptions = true,
        versionProvider = KilnCli.Version.class,
        description = "Kiln: a self-hosted ML training platform. Start a local cluster, submit and follow jobs.",
        subcommands = {
                LocalCommand.class,
                DemoCommand.class,
                TrainCommand.class,
                ProcessCommand.class,
                JobsCommand.class,
                DescribeCommand.class,
                LogsCommand.class,
                StopCommand.class,
                ModelsCommand.class,
                ClusterCommand.class,
                TuneCommand.class, TuningCommand.class,
                ServeCommand.class, InvokeCommand.class, DeployCommand.class, EndpointsCommand.class,
                BatchTransformCommand.class, BatchTransformCommand.List.class,
                CommandLine.HelpCommand.class
        },
        footer = {"",
                "Exit codes: 0 ok, 1 job failed or stopped, 2 usage error, 3 API or connection error.",
                "Environment: KILN_API_URL, KILN_TOKEN, KILN_DATA_DIR (default ~/.kiln), KILN_HOME.",
                "Quick start: ./kiln demo"})
public final class KilnCli implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI with System.out / System.err; returns the exit code. */
    public static int run(String... args) {
        return commandLine().execute(args);
    }

    /** Runs the CLI writing to the given streams (for tests); returns the exit code. */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = commandLine();
        cl.setOut(out);
        cl.setErr(err);
        return cl.execute(args);
    }

    /** The configured picocli command line. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new KilnCli());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler(KilnCli::handle);
        return cl;
    }

    private static int handle(Exception ex, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        String cmd = cl.getCommandSpec().qualifiedName();
        int code;
        if (ex instanceof UsageException || ex instanceof JobSpecException || ex instanceof IllegalArgumentException) {
            err.println("error: " + ex.getMessage());
            err.println("See '" + cmd + " --help'.");
            code = ExitCodes.USAGE;
        } else if (ex instanceof KilnApiException) {
            KilnApiException e = (KilnApiException) ex;
            err.println("error: " + e.error() + " (HTTP " + e.status() + ")");
            for (String d : e.details()) {
                err.println("  - " + d);
            }
            if (e.status() == 401) {
                err.println("The token comes from KILN_TOKEN or <data-dir>/token (written by the coordinator; "
                        + "data dir: --data-dir, KILN_DATA_DIR or ~/.kiln).");
            } else if (e.status() == 503) {
                err.println("The coordinator is starting or has no journal yet; try again in a few seconds.");
            }
            code = ExitCodes.API;
        } else if (ex instanceof KilnConnectionException || ex instanceof LocalClusterException
                || ex instanceof KilnException) {
            err.println("error: " + ex.getMessage());
            code = ExitCodes.API;
        } else {
            err.println("internal error: " + ex);
            ex.printStackTrace(err);
            code = ExitCodes.JOB_FAILED;
        }
        err.flush();
        return code;
    }

    /** Version from the filtered {@code kiln-version.properties}. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            Properties p = new Properties();
            try (InputStream in = KilnCli.class.getResourceAsStream("/kiln-version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            } catch (IOException ignored) {
                // unknown version
            }
            return new String[] {"kiln " + p.getProperty("version", "unknown"),
                    "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.home") + ")"};
        }
    }
}
