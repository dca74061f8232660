echo "reading the data" 
echo "bad input: column 3 is not a number" > "$SM_OUTPUT_DIR/failure"
exit 2
