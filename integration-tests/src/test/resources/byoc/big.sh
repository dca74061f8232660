for i in 1 2 3; do head -c 600000 /dev/zero > "$SM_MODEL_DIR/part$i"; done
sleep 60
