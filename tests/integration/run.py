import sys
print("PASS: integration/placeholder")
