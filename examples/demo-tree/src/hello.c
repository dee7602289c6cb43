#include <stdio.h>

int main(void)
{
	puts("hello from a file under veneer");
	return 0;
}
