/* Test object without vn_filter_entry: the daemon must refuse it. */
int vn_not_a_filter(void);

int vn_not_a_filter(void)
{
	return 0;
}
