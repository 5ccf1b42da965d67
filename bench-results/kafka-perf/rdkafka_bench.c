/*
 * rdkafka_bench: a closed-loop librdkafka producer or consumer for the Kafka-vs-native
 * comparison of issue #12 (bench-results/kafka-vs-native.sh runs it). It plays the part of
 * librdkafka's rdkafka_performance, which Debian does not package: the producer keeps
 * librdkafka's queue full of MESSAGE_SIZE-byte messages (round-robin over the topic's
 * partitions, no key) for DURATION seconds after a WARMUP, and counts the bytes whose
 * delivery reports came back without error; the consumer reads a topic from the beginning
 * until it has COUNT messages. Prints one JSON line: messages, bytes, seconds, MiB/s, errors.
 *
 * Build: cc -O2 -o rdkafka_bench rdkafka_bench.c -lrdkafka   (Debian: librdkafka-dev)
 * Usage: rdkafka_bench produce BROKER TOPIC MESSAGE_SIZE DURATION WARMUP [key=value ...]
 *        rdkafka_bench consume BROKER TOPIC MESSAGE_SIZE COUNT [key=value ...]
 * key=value pairs are librdkafka configuration (batch.size, linger.ms, acks, ...).
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Delivery reports counted after the warm-up. */
static double measure_from;
static long long delivered, delivered_bytes, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        failed++;
        return;
    }
    if (now() >= measure_from) {
        delivered++;
        delivered_bytes += (long long)m->len;
    }
}

static void configure(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, key, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdkafka_bench: %s=%s: %s\n", key, value, error);
        exit(2);
    }
}

static void configure_pairs(rd_kafka_conf_t *conf, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "rdkafka_bench: expected key=value, got %s\n", argv[i]);
            exit(2);
        }
        *eq = '\0';
        configure(conf, argv[i], eq + 1);
    }
}

static int produce(const char *broker, const char *topic, size_t size, double duration,
                   double warmup, int argc, char **argv) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    configure(conf, "bootstrap.servers", broker);
    configure_pairs(conf, argc, argv);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!rk) {
        fprintf(stderr, "rdkafka_bench: %s\n", error);
        return 2;
    }
    char *payload = malloc(size);
    memset(payload, 'x', size);
    double start = now();
    measure_from = start + warmup;
    double end = measure_from + duration;
    long long queued = 0;
    while (now() < end) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1);
            continue;
        }
        if (err) {
            fprintf(stderr, "rdkafka_bench: produce: %s\n", rd_kafka_err2str(err));
            return 1;
        }
        queued++;
        if ((queued & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    /* What is still queued is delivered after the measured window and not counted. */
    double measured = now() - measure_from;
    long long bytes = delivered_bytes, messages = delivered;
    rd_kafka_flush(rk, 30000);
    printf("{\"mode\":\"produce\",\"messages\":%lld,\"bytes\":%lld,\"seconds\":%.3f,"
           "\"mib_per_s\":%.1f,\"msgs_per_s\":%.0f,\"errors\":%lld}\n",
           messages, bytes, measured, bytes / measured / 1048576.0, messages / measured, failed);
    rd_kafka_destroy(rk);
    free(payload);
    return failed ? 1 : 0;
}

static int consume(const char *broker, const char *topic, size_t size, long long count,
                   int argc, char **argv) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    configure(conf, "bootstrap.servers", broker);
    configure(conf, "group.id", "rdkafka-bench");
    configure(conf, "auto.offset.reset", "earliest");
    configure(conf, "enable.auto.commit", "false");
    configure_pairs(conf, argc, argv);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!rk) {
        fprintf(stderr, "rdkafka_bench: %s\n", error);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    long long messages = 0, bytes = 0, wrong = 0;
    double start = 0, give_up = now() + 60;
    while (messages < count && now() < give_up) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (messages == 0)
                start = now();
            messages++;
            bytes += (long long)m->len;
            wrong += m->len != size;
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "rdkafka_bench: consume: %s\n", rd_kafka_message_errstr(m));
            wrong++;
        }
        rd_kafka_message_destroy(m);
    }
    double seconds = now() - start;
    printf("{\"mode\":\"consume\",\"messages\":%lld,\"bytes\":%lld,\"seconds\":%.3f,"
           "\"mib_per_s\":%.1f,\"msgs_per_s\":%.0f,\"errors\":%lld}\n",
           messages, bytes, seconds, bytes / seconds / 1048576.0, messages / seconds, wrong);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return messages == count && wrong == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 7 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], argv[3], strtoul(argv[4], 0, 10), atof(argv[5]), atof(argv[6]),
                       argc - 7, argv + 7);
    if (argc >= 6 && strcmp(argv[1], "consume") == 0)
        return consume(argv[2], argv[3], strtoul(argv[4], 0, 10), atoll(argv[5]), argc - 6,
                       argv + 6);
    fprintf(stderr, "usage: rdkafka_bench produce BROKER TOPIC SIZE DURATION WARMUP [k=v...]\n"
                    "       rdkafka_bench consume BROKER TOPIC SIZE COUNT [k=v...]\n");
    return 2;
}
