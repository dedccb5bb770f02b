/* main.c - command line of chatgate_loadgen, the chatgate load generator.
 *
 *   chatgate_loadgen p2p|fanout|idle|backlog [flags]
 *
 * Parses flags into struct lg_opts (lg.h), refuses any target outside
 * 127.0.0.0/8, and hands over to lg_run() (scenario.c), which prints a
 * human-readable summary and one "RESULT {json}" line. --help lists every
 * flag with its default. */
#include "fmacros.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

static void
usage(FILE *f)
{
    fprintf(f,
"usage: chatgate_loadgen SCENARIO [flags]\n"
"scenarios:\n"
"  p2p      N users send to random others (window W or total rate R),\n"
"           receivers confirm each message; throughput, latencies, lost\n"
"  fanout   S senders -> one user with D sessions; every message reaches all D\n"
"  idle     C sessions CONNECT + SUBSCRIBE and stay; server RSS per connection\n"
"  backlog  one user with N pending messages runs init; drain time, RSS growth\n"
"target:\n"
"  --target gateway|rabbitmq  (default gateway; rabbitmq: p2p and idle)\n"
"  --host 127.0.0.1  --port 8080 (rabbitmq: 15674)  --base PATH (gateway {base})\n"
"  --port P1,P2,..   sessions round-robin over several gateway processes\n"
"                    (accounts use the first)\n"
"  --ws-path /ws     (rabbitmq web-stomp path)\n"
"load:\n"
"  --users 100  --window 16  --rate 0 (total sends/s; 0 = as fast as the window allows)\n"
"  --warmup 3  --duration 10  --content-bytes 128\n"
"  --drain 5    after the window: wait until every answer and delivery arrived,\n"
"               or until nothing arrived for this many seconds (cap 120 s)\n"
"  --senders 4  --devices 10             (fanout)\n"
"  --conns 1000  --conns-per-user 1  --hold 2  --src-addrs 1  (idle)\n"
"  --backlog 100000  --redis unix:///path|127.0.0.1:6379  --chat-lua gateway/store/lua/chat.lua\n"
"  --fill-conns 8  --confirm             (backlog)\n"
"  --concurrency 256                     (connects / HTTP requests in flight)\n"
"  --prefix lg  --password lg-bench-password  (gateway accounts <prefix><i>)\n"
"  --rabbit-prefetch 0                   (prefetch-count on SUBSCRIBE; 0 = none)\n"
"measurement:\n"
"  --server-pids PID[,PID..]  CPU and RSS of the server (gateway or beam.smp)\n"
"  --redis-pid PID            CPU of redis-server\n"
"  --redis URL                also: INFO commandstats deltas per confirmed message\n"
"  --label TEXT  --seed N  --verbose\n");
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "target", 1, 0, 't' }, { "host", 1, 0, 'H' }, { "port", 1, 0, 'p' },
        { "base", 1, 0, 'b' }, { "ws-path", 1, 0, 'W' }, { "users", 1, 0, 'u' },
        { "window", 1, 0, 'w' }, { "rate", 1, 0, 'r' }, { "warmup", 1, 0, 'm' },
        { "duration", 1, 0, 'd' }, { "drain", 1, 0, 'D' }, { "content-bytes", 1, 0, 'c' },
        { "senders", 1, 0, 'S' }, { "devices", 1, 0, 'v' }, { "conns", 1, 0, 'C' },
        { "conns-per-user", 1, 0, 'U' }, { "hold", 1, 0, 'o' }, { "src-addrs", 1, 0, 'a' },
        { "backlog", 1, 0, 'B' }, { "redis", 1, 0, 'R' }, { "chat-lua", 1, 0, 'L' },
        { "fill-conns", 1, 0, 'F' }, { "confirm", 0, 0, 'K' }, { "concurrency", 1, 0, 'n' },
        { "prefix", 1, 0, 'P' }, { "password", 1, 0, 'x' }, { "rabbit-prefetch", 1, 0, 'f' },
        { "server-pids", 1, 0, 's' }, { "redis-pid", 1, 0, 'i' }, { "label", 1, 0, 'l' },
        { "seed", 1, 0, 'e' }, { "verbose", 0, 0, 'V' }, { "help", 0, 0, 'h' },
        { 0, 0, 0, 0 }
    };
    struct lg_opts o = {
        .target = LG_GATEWAY, .host = "127.0.0.1", .port = 0, .base = "",
        .ws_path = "/ws", .prefix = "lg", .password = "lg-bench-password",
        .users = 100, .window = 16, .warmup = 3, .duration = -1, .drain = 5,
        .content_bytes = 128, .conns = 1000, .conns_per_user = 1, .concurrency = 256,
        .nsrc = 1, .devices = 10, .senders = 4, .backlog = 100000, .fill_conns = 8,
        .chat_lua = "gateway/store/lua/chat.lua", .hold = 2,
    };
    const char *scen;
    int ch;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    scen = argv[1];
    if (strcmp(scen, "p2p") == 0) o.scenario = LG_P2P;
    else if (strcmp(scen, "fanout") == 0) o.scenario = LG_FANOUT;
    else if (strcmp(scen, "idle") == 0) o.scenario = LG_IDLE;
    else if (strcmp(scen, "backlog") == 0) o.scenario = LG_BACKLOG;
    else {
        fprintf(stderr, "loadgen: unknown scenario '%s'\n", scen);
        usage(stderr);
        return 2;
    }
    optind = 2;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (strcmp(optarg, "gateway") == 0) o.target = LG_GATEWAY;
            else if (strcmp(optarg, "rabbitmq") == 0) o.target = LG_RABBIT;
            else { fprintf(stderr, "loadgen: --target gateway|rabbitmq\n"); return 2; }
            break;
        case 'H': o.host = optarg; break;
        case 'p':
            o.nports = lg_parse_pids(optarg, o.ports, LG_MAX_PIDS);
            o.port = o.nports > 0 ? o.ports[0] : 0;
            break;
        case 'b': o.base = optarg; break;
        case 'W': o.ws_path = optarg; break;
        case 'u': o.users = atoi(optarg); break;
        case 'w': o.window = atoi(optarg); break;
        case 'r': o.rate = atof(optarg); break;
        case 'm': o.warmup = atof(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 'D': o.drain = atof(optarg); break;
        case 'c': o.content_bytes = atoi(optarg); break;
        case 'S': o.senders = atoi(optarg); break;
        case 'v': o.devices = atoi(optarg); break;
        case 'C': o.conns = atoi(optarg); break;
        case 'U': o.conns_per_user = atoi(optarg); break;
        case 'o': o.hold = atof(optarg); break;
        case 'a': o.nsrc = atoi(optarg); break;
        case 'B': o.backlog = atoi(optarg); break;
        case 'R': o.redis = optarg; break;
        case 'L': o.chat_lua = optarg; break;
        case 'F': o.fill_conns = atoi(optarg); break;
        case 'K': o.confirm = 1; break;
        case 'n': o.concurrency = atoi(optarg); break;
        case 'P': o.prefix = optarg; break;
        case 'x': o.password = optarg; break;
        case 'f': o.rabbit_prefetch = atoi(optarg); break;
        case 's': o.nserver = lg_parse_pids(optarg, o.server_pids, LG_MAX_PIDS); break;
        case 'i': o.redis_pid = atoi(optarg); break;
        case 'l': o.label = optarg; break;
        case 'e': o.seed = strtoull(optarg, NULL, 10); break;
        case 'V': o.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    /* This tool only ever talks to the local machine. */
    if (strncmp(o.host, "127.", 4) != 0) {
        fprintf(stderr, "loadgen: --host must be a 127.x.y.z address\n");
        return 2;
    }
    if (o.port == 0)
        o.port = o.target == LG_RABBIT ? 15674 : 8080;
    if (o.duration < 0)
        o.duration = o.scenario == LG_BACKLOG ? 120 : 10;
    if (o.target == LG_RABBIT && (o.scenario == LG_FANOUT || o.scenario == LG_BACKLOG)) {
        fprintf(stderr, "loadgen: the rabbitmq target runs p2p and idle only\n");
        return 2;
    }
    if (o.scenario == LG_BACKLOG && o.redis == NULL) {
        fprintf(stderr, "loadgen: backlog needs --redis to fill the inbox\n");
        return 2;
    }
    if (o.window < 1 || o.users < 1 || o.concurrency < 1 || o.duration > 3600 ||
        o.warmup > 600 || o.drain > 600 || o.hold > 3600 || o.conns < 1 ||
        o.devices < 1 || o.devices > 255 || o.senders < 1 || o.nsrc < 1 || o.nsrc > 62500) {
        fprintf(stderr, "loadgen: a flag is out of range (see --help)\n");
        return 2;
    }
    return lg_run(&o);
}
