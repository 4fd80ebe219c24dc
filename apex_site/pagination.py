from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """``?page=N&page_size=M``; pages of PAGE_SIZE, at most 100 rows."""

    page_size_query_param = "page_size"
    max_page_size = 100
