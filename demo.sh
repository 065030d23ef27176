#!/usr/bin/env bash
# The main job: build bunker, make a busybox bundle, and run it with our runc the way the seed does
# (`runc spec`, then `runc run container1`). Interactive shell when run from a terminal; a scripted
# run otherwise. Works offline once the packages are installed.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
node_modules/.bin/bun run build.ts
RUNC="$PWD/dist/bin/runc"

dir=/tmp/bunker-demo
rm -rf "$dir" && mkdir -p "$dir/rootfs"/{bin,dev,etc,proc,sys,tmp,root}
cp /bin/busybox "$dir/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$dir/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
cd "$dir"
"$RUNC" spec
root="$dir/state"
if [ -t 0 ]; then
  echo "== runc run container1 (exit the shell to stop it) =="
  exec "$RUNC" --root "$root" run container1
fi
# No terminal: the same container, non-interactively.
sed -i 's/"terminal": true/"terminal": false/; s/^\t\t\t"sh"$/\t\t\t"sh", "-c", "echo hello from a bunker container; ps aux; hostname"/' config.json
echo "== runc run container1 =="
"$RUNC" --root "$root" run container1
