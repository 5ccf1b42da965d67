/tmp/target-bench/release/deps/log-a41e885e982bbb8e --dir /var/tmp/ringbus-storage-bench.6hBqXS --seconds 10 --only hot-read --read-bytes 1G --cpu 1
