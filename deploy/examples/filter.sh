#!/bin/sh
# deploy/examples/filter.sh — a script policy (deploy/dotgate.example.json): refuse executable
# attachments. dotgate runs it at the dot with the message on fd 3 ($DOTGATE_MESSAGE); exit 0
# accepts, 2 rejects with the first line of stdout as the reply text (README, "Script policy").
if grep -Eiq 'filename\*?=("?)[^";]*\.(exe|scr|com|pif|bat|cmd|js|vbs|jar)\1' "$DOTGATE_MESSAGE"; then
  echo "Executable attachments are not accepted"
  exit 2
fi
exit 0
