package io.kaudit.opensearch;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.opensearch.action.admin.cluster.health.ClusterHealthResponse;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Starts one real OpenSearch node for the end-to-end tests, without the
 * distribution: the server jar plus the Netty4 HTTP/transport plugin (and
 * analysis-common) loaded as classpath plugins, the way OpenSearch's own test
 * MockNode does. No Bootstrap, so no security manager, no JNA natives and no
 * bootstrap checks.
 *
 * <pre>
 * java -Xms512m -Xmx1g -cp 'target/classes:target/lib/*' io.kaudit.opensearch.Launcher \
 *     --home DIR [--port N] [--cluster-name NAME] [--node-name NAME]
 *     [--delete-home-on-exit] [--ignore-stdin]
 * </pre>
 *
 * Prints {@code OPENSEARCH_READY http://127.0.0.1:PORT} on stdout once HTTP is
 * bound and cluster health is at least yellow; runs until stdin reaches EOF
 * (unless --ignore-stdin, e.g. when stdin is /dev/null) or the JVM gets
 * SIGTERM/SIGINT, then closes the node (and with --delete-home-on-exit
 * removes the home dir). Logs go to stderr.
 */
public final class Launcher {

    /** Opens Node's protected constructor, which takes classpath plugins. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Settings settings, Collection<Class<? extends Plugin>> plugins) {
            super(InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "kaudit-os"), plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        String home = null, port = "0", clusterName = "kaudit-e2e", nodeName = "kaudit-os-0";
        boolean deleteHome = false, watchStdin = true;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (a) {
                case "--home": home = v; i++; break;
                case "--port": port = v; i++; break;
                case "--cluster-name": clusterName = v; i++; break;
                case "--node-name": nodeName = v; i++; break;
                case "--delete-home-on-exit": deleteHome = true; break;
                case "--ignore-stdin": watchStdin = false; break;
                default:
                    System.err.println("usage: Launcher --home DIR [--port N] [--cluster-name NAME] [--node-name NAME] [--delete-home-on-exit] [--ignore-stdin]");
                    System.exit(2);
            }
        }
        if (home == null) {
            System.err.println("Launcher: --home is required");
            System.exit(2);
        }
        Path homeDir = Path.of(home).toAbsolutePath();
        for (String sub : new String[] { "config", "data", "logs", "plugins", "modules" }) {
            Files.createDirectories(homeDir.resolve(sub));
        }

        Settings settings = Settings.builder()
            .put("cluster.name", clusterName)
            .put("node.name", nodeName)
            .put("path.home", homeDir.toString())
            .put("path.data", homeDir.resolve("data").toString())
            .put("path.logs", homeDir.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            // Tests run on small, busy disks and heaps.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("indices.breaker.total.use_real_memory", false)
            .put("action.auto_create_index", true)
            .build();

        List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, CommonAnalysisPlugin.class);
        final Node node = new EmbeddedNode(settings, plugins);

        final boolean cleanup = deleteHome;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            closeQuietly(node);
            if (cleanup) {
                deleteQuietly(homeDir);
            }
        }, "kaudit-os-shutdown"));

        node.start();

        ClusterHealthResponse health = node.client().admin().cluster().prepareHealth()
            .setWaitForYellowStatus()
            .setTimeout(TimeValue.timeValueMinutes(2))
            .get();
        if (health.isTimedOut()) {
            System.err.println("Launcher: cluster health did not reach yellow: " + health.getStatus());
            closeQuietly(node);
            System.exit(1);
        }

        // A single node can't place replicas: default new indices (and data
        // stream backing indices) to 0 so health goes green. This is read from
        // the cluster-state metadata, not from node settings.
        node.client().admin().cluster().prepareUpdateSettings()
            .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", 0))
            .get();

        HttpServerTransport http = node.injector().getInstance(HttpServerTransport.class);
        int boundPort = http.boundAddress().publishAddress().getPort();
        System.out.println("OPENSEARCH_READY http://127.0.0.1:" + boundPort);
        System.out.flush();

        if (!watchStdin) {
            Thread.currentThread().join(); // until SIGTERM/SIGINT
        }
        // Run until our parent closes stdin (or dies, which closes it too).
        InputStream in = System.in;
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) >= 0) {
                // discard
            }
        } catch (IOException e) {
            // treat like EOF
        }
        System.err.println("Launcher: stdin closed, stopping node");
        System.exit(0); // runs the shutdown hook
    }

    private static void closeQuietly(Node node) {
        try {
            if (!node.isClosed()) {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            }
        } catch (Exception e) {
            System.err.println("Launcher: error closing node: " + e);
        }
    }

    private static void deleteQuietly(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort
                }
            });
        } catch (IOException e) {
            // best effort
        }
    }

    private Launcher() {}
}
