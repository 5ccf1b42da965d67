//! The `fs` rows: the data dir's filesystem type and its atime and barrier mount options.

use super::Row;
use crate::tune::probe::Storage;

pub(super) fn rows(storage: &Storage, rows: &mut Vec<Row>) {
    let mount = match &storage.mount {
        Ok(mount) => mount,
        Err(reason) => {
            rows.push(Row::new("fs", "filesystem").unknown(reason.clone()));
            return;
        }
    };
    let row = Row::new("fs", format!("{} filesystem", mount.mount_point))
        .current(&mount.fstype)
        .recommended("xfs (or ext4)");
    rows.push(match mount.fstype.as_str() {
        "xfs" => row.ok("XFS: O_DIRECT, preallocation, and allocation groups that let many partitions' files grow at once"),
        "ext4" => {
            if mount.has_option("data=journal") {
                row.warn("ext4 with data=journal writes every block twice and does not support O_DIRECT")
                    .fix(format!("remount {} with data=ordered", mount.mount_point), "/etc/fstab: data=ordered")
            } else {
                row.ok("ext4 supports O_DIRECT and preallocation; XFS scales better with many partitions appending at once")
            }
        }
        "tmpfs" | "ramfs" | "overlay" | "nfs" | "nfs4" | "fuse" | "9p" | "virtiofs" => row
            .warn("no O_DIRECT (or not a local disk): ringbus refuses it unless --allow-buffered-io, and then the page cache sits between the log and the disk")
            .fix("put the data dir on a local XFS or ext4 filesystem", "/etc/fstab"),
        "btrfs" | "zfs" | "bcachefs" => row
            .warn("copy-on-write: every append rewrites metadata and checksums, fdatasync costs more, and O_DIRECT semantics differ")
            .fix("put the data dir on XFS or ext4", "/etc/fstab"),
        _ => row.unknown("a filesystem ringbus has not been measured on"),
    });

    let atime = ["noatime", "relatime", "strictatime"]
        .into_iter()
        .find(|option| mount.has_option(option))
        .unwrap_or("strictatime");
    rows.push(
        Row::new("fs", format!("{} atime", mount.mount_point))
            .current(atime)
            .recommended("noatime")
            .ok_if(
                atime == "noatime",
                "a fetch that reads a segment from disk would otherwise dirty its inode (relatime: after each write), an extra metadata write for nothing",
            )
            .fix(
                format!("mount -o remount,noatime {}", mount.mount_point),
                "add noatime to the options in /etc/fstab",
            ),
    );
    let no_barrier = mount.has_option("nobarrier") || mount.has_option("barrier=0");
    rows.push(
        Row::new("fs", format!("{} barriers", mount.mount_point))
            .current(if no_barrier { "off (nobarrier)" } else { "on" })
            .recommended("on")
            .ok_if(
                !no_barrier,
                "without barriers fdatasync sends no FLUSH: acks=all is no longer durable on a volatile cache",
            )
            .fix(
                format!("mount -o remount,barrier {}", mount.mount_point),
                "remove nobarrier/barrier=0 from /etc/fstab",
            ),
    );
}
