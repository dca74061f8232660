echo "sleeping"
sleep 120
